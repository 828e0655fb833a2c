r"""Balanced multimodal training: on-the-fly gradient modulation with Gaussian noise (OGM-GE, Peng
et al., "Balanced Multimodal Learning via On-the-fly Gradient Modulation", CVPR 2022).

Joint training lets the modality that is learned fastest dominate the fused prediction, and once
its loss is low the others receive little gradient. OGM-GE measures, every step, how confident
each modality's own prediction is on the true class,

.. math::
    s_m = \frac{1}{|\mathcal{B}_m|} \sum_{b \in \mathcal{B}_m} \mathrm{softmax}(\hat{\mathbf{y}}_{b,m})_{y_b},
    \qquad \rho_m = \frac{s_m}{\frac{1}{M} \sum_{m'} s_{m'}},
    \qquad k_m = 1 - \tanh\big(\alpha \, \mathrm{ReLU}(\rho_m - 1)\big)

(:math:`\mathcal{B}_m` the samples of the batch that have modality :math:`m`; with two modalities
:math:`\rho_m > 1` exactly when :math:`m` leads, as in the paper's ratio of the two scores), and
scales the gradients of each modality's own parameters by :math:`k_m`, so the leading modality
slows down while the others catch up. The Gaussian noise (GE) of the paper is added to those
gradients, with the standard deviation of each gradient, to keep the generalisation that the
smaller steps would lose.

Models opt in by returning a :class:`~graphfuse.nn.MultimodalOutput` while training (their
unimodal heads give :math:`\hat{\mathbf{y}}_{b,m}`) and by listing each modality's parameters in
``modality_parameters()``; graphfuse's graph models with unimodal heads do both.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from graphfuse.checks import check_int
from graphfuse.models.classifier import MODULATIONS
from graphfuse.nn.unimodal import MultimodalOutput


def modulation_coefficients(output: MultimodalOutput, target: Tensor, alpha: float) -> Tensor:
    """:math:`k_m` of each modality ``[M]`` (1 for a modality absent from the whole batch)."""
    probability = output.unimodal.float().softmax(-1)  # [B, M, K]
    on_target = probability.gather(-1, target.view(-1, 1, 1).expand(-1, probability.size(1), 1)).squeeze(-1)
    present = output.present.float()
    count = present.sum(0)
    score = (on_target * present).sum(0) / count.clamp_min(1)
    seen = count > 0
    mean = (score * seen).sum() / seen.sum().clamp_min(1)
    ratio = torch.where(seen, score / mean.clamp_min(1e-12), torch.ones_like(score))
    return 1 - torch.tanh(alpha * torch.relu(ratio - 1))


class GradientModulation:
    """Scales (and, for ``"ogm-ge"``, perturbs) each modality's gradients after ``backward``.

    Args:
        mode (str, optional): ``"ogm-ge"`` (modulation and Gaussian noise), ``"ogm"`` (modulation
            only) or ``"none"``. (default: :obj:`"ogm-ge"`)
        alpha (float, optional): strength :math:`\\alpha`. (default: :obj:`0.5`)
        epochs (int, optional): modulate during the first ``epochs`` epochs only (the paper
            stops half-way); ``None`` for all. (default: :obj:`None`)
    """

    def __init__(self, mode: str = "ogm-ge", alpha: float = 0.5, epochs: int | None = None) -> None:
        if mode not in MODULATIONS:
            raise ValueError(f"gradient modulation must be one of {MODULATIONS}, got {mode!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"gradient modulation 'alpha' must be a positive number, got {alpha!r}")
        if epochs is not None:
            check_int(epochs, "gradient modulation 'epochs' (or None for every epoch)")
        self.mode, self.alpha, self.epochs = mode, float(alpha), epochs

    def active(self, epoch: int) -> bool:
        return self.mode != "none" and (self.epochs is None or epoch < self.epochs)

    @torch.no_grad()
    def __call__(self, output: MultimodalOutput, target: Tensor,
                 parameters: Mapping[str, Sequence[torch.nn.Parameter]]) -> Tensor:
        """Modulates the gradients of ``parameters[m]`` for each modality ``m`` of
        ``output.node_types``; returns :math:`k` (all ones, touching nothing, for ``mode="none"``)."""
        if self.mode == "none":
            return torch.ones(output.unimodal.size(1), device=output.unimodal.device)
        coefficients = modulation_coefficients(output, target, self.alpha)
        for m, node_type in enumerate(output.node_types):
            k = coefficients[m]
            for parameter in parameters.get(node_type, ()):
                if parameter.grad is None:
                    continue
                grad = parameter.grad
                noise = torch.randn_like(grad) * grad.std() if self.mode == "ogm-ge" and grad.numel() > 1 else 0
                parameter.grad = grad * k.to(grad.dtype) + noise
        return coefficients

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(mode={self.mode!r}, alpha={self.alpha}, epochs={self.epochs})"
