"""Contrastive alignment of paired embeddings: the symmetric InfoNCE loss and a learnable temperature."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LearnableTemperature", "info_nce"]


def _check_embeddings(value: Any, name: str) -> None:
    if not isinstance(value, Tensor) or not value.is_floating_point():
        raise TypeError(f"info_nce expects '{name}' as a floating-point tensor of shape [batch_size, dim]; received "
                        f"{type(value).__name__} of dtype {getattr(value, 'dtype', None)}")
    if value.dim() != 2:
        raise ValueError(f"info_nce expects '{name}' of shape [batch_size, dim]; received shape {tuple(value.shape)}")


def info_nce(query: Tensor, gallery: Tensor, logit_scale: Tensor | float) -> Tensor:
    r"""The symmetric InfoNCE loss of CLIP over a batch of :math:`B` paired embeddings.

    With similarities :math:`s_{ij} = \tau^{-1}\, \mathbf{q}_i^\top \mathbf{g}_j` (where
    :math:`\tau^{-1}` is ``logit_scale``), pair :math:`i` is the positive of row and column
    :math:`i` and the rest of the batch its negatives:

    .. math::
        \mathcal{L} = \frac{1}{2B} \sum_{i=1}^{B} \left(
        -\log \frac{e^{s_{ii}}}{\sum_{j} e^{s_{ij}}}
        -\log \frac{e^{s_{ii}}}{\sum_{j} e^{s_{ji}}} \right)

    The embeddings are used as given: L2-normalise them first (e.g. with
    :func:`torch.nn.functional.normalize`) for the cosine similarities of CLIP. Not normalising
    here leaves that choice, and any projection before it, to the caller.

    The product and the softmax run in at least float32, also under bf16/fp16 autocast: bf16
    keeps 8 significant bits, so logits near a scale of 100 are rounded to steps of 0.5, which
    erases the small differences within a row that the softmax turns into the loss.

    Args:
        query (torch.Tensor): embeddings of one modality.
        gallery (torch.Tensor): embeddings of the other modality, row :math:`i` paired with
            ``query[i]``.
        logit_scale (torch.Tensor or float): inverse temperature, a scalar (e.g. the output
            of :class:`LearnableTemperature`).

    Shapes:
        - **input:** query :math:`(B, D)`, gallery :math:`(B, D)`, logit_scale scalar
        - **output:** scalar loss (float32, or float64 for float64 inputs)
    """
    _check_embeddings(query, "query")
    _check_embeddings(gallery, "gallery")
    if query.shape != gallery.shape:
        raise ValueError(f"info_nce expects query and gallery of one shape [batch_size, dim] (row i of each forms "
                         f"pair i); received {tuple(query.shape)} and {tuple(gallery.shape)}")
    if query.size(0) < 2:
        raise ValueError(f"info_nce needs at least 2 pairs per batch (the other pairs are the negatives); received "
                         f"{query.size(0)}")
    dtype = torch.promote_types(torch.promote_types(query.dtype, gallery.dtype), torch.float32)
    if isinstance(logit_scale, Tensor):
        if logit_scale.numel() != 1:
            raise ValueError(f"info_nce expects 'logit_scale' as a scalar; received a tensor of shape "
                             f"{tuple(logit_scale.shape)}")
        logit_scale = logit_scale.to(dtype)
    elif isinstance(logit_scale, bool) or not isinstance(logit_scale, (int, float)):
        raise TypeError(f"info_nce expects 'logit_scale' as a number or a scalar tensor; received "
                        f"{type(logit_scale).__name__}")
    elif not (math.isfinite(logit_scale) and logit_scale > 0):
        raise ValueError(f"info_nce expects 'logit_scale' as a positive finite number; received {logit_scale!r}")
    # Autocast would cast the product back down to bf16/fp16 whatever the input dtype, so it is switched off here.
    with torch.autocast(device_type=query.device.type, enabled=False):
        logits = logit_scale * (query.to(dtype) @ gallery.to(dtype).T)
        labels = torch.arange(query.size(0), device=query.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


class LearnableTemperature(torch.nn.Module):
    r"""A learnable inverse temperature (logit scale) for :func:`info_nce`, parametrised as in CLIP:

    .. math::
        \tau^{-1} = \min\left(e^{\theta},\ \tau^{-1}_{\max}\right)

    Learning the logarithm :math:`\theta` keeps the scale positive and its steps relative. The cap
    prevents the scale from growing until the softmax is one-hot and training unstable; above it
    the gradient to :math:`\theta` is zero.

    Args:
        init_temperature (float, optional): initial temperature :math:`\tau`. (default: :obj:`0.07`)
        max_scale (float, optional): largest scale :math:`\tau^{-1}_{\max}`. (default: :obj:`100.0`)

    Shapes:
        - **input:** none
        - **output:** scalar scale
    """

    def __init__(self, init_temperature: float = 0.07, max_scale: float = 100.0) -> None:
        super().__init__()
        for name, value in (("init_temperature", init_temperature), ("max_scale", max_scale)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value)
                                                                                      and value > 0):
                raise ValueError(f"LearnableTemperature '{name}' must be a positive finite number, got {value!r}")
        if 1.0 / init_temperature > max_scale:
            raise ValueError(f"LearnableTemperature 'init_temperature' {init_temperature} gives a scale "
                             f"{1.0 / init_temperature:.4g} above 'max_scale' {max_scale}; raise 'max_scale' or the "
                             f"temperature")
        self.init_temperature = float(init_temperature)
        self.max_scale = float(max_scale)
        self.log_scale = torch.nn.Parameter(torch.empty(()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.log_scale.fill_(math.log(1.0 / self.init_temperature))

    def forward(self) -> Tensor:
        return self.log_scale.exp().clamp(max=self.max_scale)

    @property
    def temperature(self) -> float:
        """The current temperature, ``1 / scale``, for logging."""
        with torch.no_grad():
            return 1.0 / float(self.forward())

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:.4f}, max_scale={self.max_scale}"
