r"""Fusion of per-modality vectors ``z [B, M, C]`` (with ``present [B, M]``, as the
:class:`~graphfuse.baselines.ModalityEncoder` of each modality gives them): :class:`EarlyFusion`
(concatenation + MLP), :class:`LateFusion` (a head per modality, predictions averaged),
:class:`TensorFusion` (outer product, Zadeh et al. 2017) and :class:`LowRankTensorFusion` (its
low-rank factorisation, Liu et al. 2018). An absent modality is masked, never averaged in as
zeros; where a fixed-size slot needs a value it holds a learned "absent" vector.
"""
from __future__ import annotations

import torch
from torch import Tensor

from graphfuse.baselines.checks import check_vectors
from graphfuse.checks import check_choice, check_int, check_probability
from graphfuse.deprecation import renamed
from graphfuse.nn.heads import ClassificationHead, RegressionHead
from graphfuse.nn.mlp import MLP

__all__ = ["EarlyFusion", "LateFusion", "LowRankTensorFusion", "TensorFusion"]

LATE_TASKS = ("classification", "multilabel", "regression")
MAX_TENSOR_CHANNELS = 2 ** 20


def _check_mlp_fusion(owner: str, channels: int, num_modalities: int, out_channels: int | None,
                      hidden_channels: int | None, dropout: float) -> tuple[int, int]:
    """The options of a fusion that ends in an MLP; returns ``out_channels`` and ``hidden_channels``
    (``channels`` where not given)."""
    check_int(channels, f"{owner} 'channels'")
    check_int(num_modalities, f"{owner} 'num_modalities'")
    out_channels, hidden_channels = out_channels or channels, hidden_channels or channels
    check_int(out_channels, f"{owner} 'out_channels'")
    check_int(hidden_channels, f"{owner} 'hidden_channels'")
    check_probability(dropout, f"{owner} 'dropout'")
    return out_channels, hidden_channels


def _with_absent(z: Tensor, present: Tensor, absent: Tensor) -> Tensor:
    """``z`` with the slots of absent modalities replaced by their learned ``absent`` vectors."""
    return torch.where(present.unsqueeze(-1), z, absent.to(z.dtype).unsqueeze(0).expand_as(z))


class EarlyFusion(torch.nn.Module):
    r"""Concatenation of the modality vectors, then an MLP; an absent modality's slot holds its
    learned vector :math:`\mathbf{e}_m`:

    .. math::
        \mathbf{h} = \mathrm{MLP}\Big(\big\Vert_{m=1}^{M} \left(\mathbf{z}_m \text{ if present}_m
        \text{ else } \mathbf{e}_m\right)\Big)

    with :math:`\mathrm{MLP} = \mathrm{Linear} \circ \mathrm{Dropout} \circ \mathrm{GELU} \circ \mathrm{Linear}`.

    Args:
        channels (int): features per modality, :math:`C`.
        num_modalities (int): :math:`M`.
        out_channels (int, optional): output size (default: ``channels``).
        hidden_channels (int, optional): hidden size of the MLP (default: ``channels``).
        dropout (float, optional): dropout in the MLP. (default: :obj:`0.0`)
        device (torch.device, optional): device of the parameters. (default: :obj:`None`)
        dtype (torch.dtype, optional): dtype of the parameters. (default: :obj:`None`)

    Shapes:
        - **input:** z :math:`(B, M, C)`, present :math:`(B, M)` bool
        - **output:** :math:`(B, C_{out})`
    """

    @renamed(hidden="hidden_channels")
    def __init__(self, channels: int, num_modalities: int, out_channels: int | None = None,
                 hidden_channels: int | None = None, dropout: float = 0.0, device=None, dtype=None) -> None:
        super().__init__()
        out_channels, hidden_channels = _check_mlp_fusion("EarlyFusion", channels, num_modalities, out_channels,
                                                          hidden_channels, dropout)
        factory = dict(device=device, dtype=dtype)
        self.channels, self.num_modalities, self.out_channels = channels, num_modalities, out_channels
        self.absent = torch.nn.Parameter(torch.empty(num_modalities, channels, **factory))
        self.mlp = MLP(num_modalities * channels, out_channels, hidden_channels, dropout, **factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.normal_(self.absent, std=0.02)
        self.mlp.reset_parameters()

    def forward(self, z: Tensor, present: Tensor) -> Tensor:
        check_vectors("EarlyFusion", z, present, self.num_modalities, self.channels)
        return self.mlp(_with_absent(z, present, self.absent).flatten(1))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, num_modalities={self.num_modalities}, "
                f"out_channels={self.out_channels})")


class LateFusion(torch.nn.Module):
    r"""Late (decision-level) fusion: a head per modality, and the mean of their predictions over
    the modalities present in each sample, :math:`\mathcal{P}`:

    .. math::
        \log \hat{\mathbf{p}} = \frac{1}{|\mathcal{P}|} \sum_{m \in \mathcal{P}}
        \log\mathrm{softmax}\big(f_m(\mathbf{z}_m)\big)
        \quad\text{(classification)}, \qquad
        \hat{\mathbf{y}} = \frac{1}{|\mathcal{P}|} \sum_{m \in \mathcal{P}} f_m(\mathbf{z}_m)
        \quad\text{(multilabel logits, regression)}

    The multi-class output is the mean of the per-modality log-probabilities: a product of experts,
    unnormalised, whose softmax is the normalised geometric mean of the modalities' distributions.
    Its :meth:`loss` (the cross-entropy of :class:`~graphfuse.nn.ClassificationHead`) renormalises
    it, so the modalities are trained end-to-end on the *averaged* prediction, not each on its own.
    The mean of per-label logits (multilabel) is the log-odds of the same normalised geometric mean
    of each label's Bernoulli distributions. Absent modalities get weight exactly :math:`0`.

    Late fusion fuses decisions, so it is its own head: it has the head interface
    (``loss``, ``predict``, ``multilabel``, ``out_channels``) that
    :class:`~graphfuse.train.ClassificationTask` and :class:`~graphfuse.train.RegressionTask` use.

    Args:
        channels (int): features per modality, :math:`C`.
        num_modalities (int): :math:`M`.
        out_channels (int): classes, labels or regression targets.
        task (str, optional): ``"classification"``, ``"multilabel"`` or ``"regression"``.
            (default: :obj:`"classification"`)
        hidden_channels (int, optional): hidden size of two-layer per-modality heads. (default: :obj:`None`)
        dropout (float, optional): dropout in the heads. (default: :obj:`0.0`)
        device (torch.device, optional): device of the parameters. (default: :obj:`None`)
        dtype (torch.dtype, optional): dtype of the parameters. (default: :obj:`None`)

    Shapes:
        - **input:** z :math:`(B, M, C)`, present :math:`(B, M)` bool, every sample with at least
          one modality present
        - **output:** :math:`(B, C_{out})` float32 (log-probabilities, logits or predictions)
    """

    @renamed(hidden="hidden_channels")
    def __init__(self, channels: int, num_modalities: int, out_channels: int, task: str = "classification",
                 hidden_channels: int | None = None, dropout: float = 0.0, device=None, dtype=None) -> None:
        super().__init__()
        check_int(channels, "LateFusion 'channels'")
        check_int(num_modalities, "LateFusion 'num_modalities'")
        check_choice(task, LATE_TASKS, "LateFusion 'task'")
        factory = dict(device=device, dtype=dtype)
        self.channels, self.num_modalities, self.task = channels, num_modalities, task
        self.multilabel = task == "multilabel"
        if task == "regression":
            heads = [RegressionHead(channels, out_channels, hidden_channels, dropout, **factory)
                     for _ in range(num_modalities)]
        else:
            heads = [ClassificationHead(channels, out_channels, hidden_channels, dropout, multilabel=self.multilabel,
                                        **factory) for _ in range(num_modalities)]
        self.heads = torch.nn.ModuleList(heads)
        self.out_channels = out_channels
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for head in self.heads:
            head.reset_parameters()

    def predictions(self, z: Tensor, present: Tensor) -> Tensor:
        r"""Each modality's own prediction :math:`(B, M, C_{out})` float32 (log-probabilities for
        classification); rows of absent modalities are zeros."""
        check_vectors("LateFusion", z, present, self.num_modalities, self.channels)
        z = z.masked_fill(~present.unsqueeze(-1), 0)  # whatever absent rows hold stays out of the gradients
        out = torch.stack([head(z[:, m]) for m, head in enumerate(self.heads)], dim=1).float()
        if self.task == "classification":
            out = torch.log_softmax(out, dim=-1)
        return out.masked_fill(~present.unsqueeze(-1), 0.0)

    def forward(self, z: Tensor, present: Tensor) -> Tensor:
        out = self.predictions(z, present)
        count = present.sum(dim=1, keepdim=True)
        # One device sync: a sample without any modality would silently become 0 / 0.
        if not bool((count > 0).all()):
            samples = (count.squeeze(1) == 0).nonzero().flatten().tolist()
            raise ValueError(f"LateFusion received samples {samples} with none of its {self.num_modalities} "
                             f"modalities present; every sample needs at least one")
        return out.sum(dim=1) / count

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """The loss of the averaged prediction: cross-entropy (which renormalises the mean
        log-probabilities), binary cross-entropy or the mean squared error."""
        return self.heads[0].loss(output, target)

    def predict(self, output: Tensor) -> Tensor:
        if self.task == "regression":
            return output
        return self.heads[0].predict(output)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, num_modalities={self.num_modalities}, "
                f"out_channels={self.out_channels}, task={self.task!r})")


class TensorFusion(torch.nn.Module):
    r"""The Tensor Fusion Network's fusion (Zadeh et al., 2017): each modality vector is projected
    to :math:`d` features and extended with a constant 1, and the outer product across modalities,
    which holds every unimodal, bimodal, ..., :math:`M`-modal product of features, feeds an MLP:

    .. math::
        \mathbf{u}_m = \begin{bmatrix} \mathbf{W}_m \mathbf{z}_m + \mathbf{b}_m \\ 1 \end{bmatrix}
        \in \mathbb{R}^{d+1}, \qquad
        \mathbf{h} = \mathrm{MLP}\big(\mathrm{vec}(\mathbf{u}_1 \otimes \mathbf{u}_2 \otimes
        \cdots \otimes \mathbf{u}_M)\big)

    The tensor has :math:`(d+1)^M` entries. An absent modality's :math:`\mathbf{W}_m \mathbf{z}_m
    + \mathbf{b}_m` is replaced by its learned vector :math:`\mathbf{e}_m \in \mathbb{R}^d`.

    Args:
        channels (int): features per modality, :math:`C`.
        num_modalities (int): :math:`M`.
        tensor_dim (int, optional): :math:`d`. (default: :obj:`8`)
        out_channels (int, optional): output size (default: ``channels``).
        hidden_channels (int, optional): hidden size of the MLP (default: ``channels``).
        dropout (float, optional): dropout in the MLP. (default: :obj:`0.0`)
        device (torch.device, optional): device of the parameters. (default: :obj:`None`)
        dtype (torch.dtype, optional): dtype of the parameters. (default: :obj:`None`)

    Shapes:
        - **input:** z :math:`(B, M, C)`, present :math:`(B, M)` bool
        - **output:** :math:`(B, C_{out})`
    """

    @renamed(hidden="hidden_channels")
    def __init__(self, channels: int, num_modalities: int, tensor_dim: int = 8, out_channels: int | None = None,
                 hidden_channels: int | None = None, dropout: float = 0.0, device=None, dtype=None) -> None:
        super().__init__()
        out_channels, hidden_channels = _check_mlp_fusion("TensorFusion", channels, num_modalities, out_channels,
                                                          hidden_channels, dropout)
        check_int(tensor_dim, "TensorFusion 'tensor_dim'")
        self.tensor_channels = (tensor_dim + 1) ** num_modalities
        if self.tensor_channels > MAX_TENSOR_CHANNELS:
            raise ValueError(f"TensorFusion with tensor_dim={tensor_dim} over {num_modalities} modalities has "
                             f"{self.tensor_channels} tensor entries; lower 'tensor_dim' or use LowRankTensorFusion")
        factory = dict(device=device, dtype=dtype)
        self.channels, self.num_modalities, self.tensor_dim = channels, num_modalities, tensor_dim
        self.out_channels = out_channels
        self.proj = torch.nn.ModuleList(torch.nn.Linear(channels, tensor_dim, **factory)
                                        for _ in range(num_modalities))
        self.absent = torch.nn.Parameter(torch.empty(num_modalities, tensor_dim, **factory))
        self.mlp = MLP(self.tensor_channels, out_channels, hidden_channels, dropout, **factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for proj in self.proj:
            proj.reset_parameters()
        self.mlp.reset_parameters()
        torch.nn.init.normal_(self.absent, std=0.02)

    def factors(self, z: Tensor, present: Tensor) -> Tensor:
        r"""The extended projections :math:`\mathbf{u}_m`: :math:`(B, M, d + 1)`."""
        check_vectors("TensorFusion", z, present, self.num_modalities, self.channels)
        u = torch.stack([proj(z[:, m]) for m, proj in enumerate(self.proj)], dim=1)
        u = _with_absent(u, present, self.absent)
        return torch.cat([u, u.new_ones(*u.shape[:2], 1)], dim=-1)

    def tensor(self, z: Tensor, present: Tensor) -> Tensor:
        r"""The flattened outer product :math:`\mathrm{vec}(\mathbf{u}_1 \otimes \cdots \otimes
        \mathbf{u}_M)`: :math:`(B, (d+1)^M)`, the first modality's index varying slowest."""
        u = self.factors(z, present)
        out = u[:, 0]
        for m in range(1, self.num_modalities):
            out = (out.unsqueeze(-1) * u[:, m].unsqueeze(1)).flatten(1)
        return out

    def forward(self, z: Tensor, present: Tensor) -> Tensor:
        return self.mlp(self.tensor(z, present))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, num_modalities={self.num_modalities}, "
                f"tensor_dim={self.tensor_dim}, out_channels={self.out_channels})")


class LowRankTensorFusion(torch.nn.Module):
    r"""Low-rank Multimodal Fusion (Liu et al., 2018): the linear map of the full fusion tensor,
    :math:`\mathbf{h} = \mathcal{W} \cdot (\mathbf{u}_1 \otimes \cdots \otimes \mathbf{u}_M)`, with
    a weight tensor of rank :math:`r`, :math:`\mathcal{W} = \sum_{i=1}^{r} \bigotimes_{m=1}^{M}
    \mathbf{W}_m^{(i)}`, computed without building either tensor:

    .. math::
        \mathbf{u}_m = \begin{bmatrix} \mathbf{z}_m \\ 1 \end{bmatrix}, \qquad
        \mathbf{h} = \sum_{i=1}^{r} \prod_{m=1}^{M} \big(\mathbf{W}_m^{(i)\top} \mathbf{u}_m\big)
        + \mathbf{b}

    with :math:`\mathbf{W}_m^{(i)} \in \mathbb{R}^{(C+1) \times C_{out}}` and the product over
    modalities elementwise. An absent modality's :math:`\mathbf{z}_m` is replaced by its learned
    vector :math:`\mathbf{e}_m`.

    Args:
        channels (int): features per modality, :math:`C`.
        num_modalities (int): :math:`M`.
        rank (int, optional): :math:`r`. (default: :obj:`4`)
        out_channels (int, optional): output size (default: ``channels``).
        device (torch.device, optional): device of the parameters. (default: :obj:`None`)
        dtype (torch.dtype, optional): dtype of the parameters. (default: :obj:`None`)

    Shapes:
        - **input:** z :math:`(B, M, C)`, present :math:`(B, M)` bool
        - **output:** :math:`(B, C_{out})`
    """

    @renamed(hidden="hidden_channels")
    def __init__(self, channels: int, num_modalities: int, rank: int = 4, out_channels: int | None = None,
                 device=None, dtype=None) -> None:
        super().__init__()
        check_int(channels, "LowRankTensorFusion 'channels'")
        check_int(num_modalities, "LowRankTensorFusion 'num_modalities'")
        check_int(rank, "LowRankTensorFusion 'rank'")
        out_channels = out_channels or channels
        check_int(out_channels, "LowRankTensorFusion 'out_channels'")
        factory = dict(device=device, dtype=dtype)
        self.channels, self.num_modalities, self.rank = channels, num_modalities, rank
        self.out_channels = out_channels
        self.weight = torch.nn.Parameter(torch.empty(num_modalities, rank, channels + 1, out_channels, **factory))
        self.bias = torch.nn.Parameter(torch.empty(out_channels, **factory))
        self.absent = torch.nn.Parameter(torch.empty(num_modalities, channels, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in range(self.num_modalities):
            for i in range(self.rank):
                torch.nn.init.xavier_normal_(self.weight.data[m, i])
        torch.nn.init.zeros_(self.bias)
        torch.nn.init.normal_(self.absent, std=0.02)

    def forward(self, z: Tensor, present: Tensor) -> Tensor:
        check_vectors("LowRankTensorFusion", z, present, self.num_modalities, self.channels)
        z = _with_absent(z, present, self.absent)
        u = torch.cat([z, z.new_ones(*z.shape[:2], 1)], dim=-1)                     # [B, M, C + 1]
        weight = self.weight.to(u.dtype)
        out = None
        for m in range(self.num_modalities):
            factor = torch.einsum("bc,rco->bro", u[:, m], weight[m])                   # [B, r, C_out]
            out = factor if out is None else out * factor
        return out.sum(dim=1) + self.bias.to(out.dtype)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, num_modalities={self.num_modalities}, "
                f"rank={self.rank}, out_channels={self.out_channels})")
