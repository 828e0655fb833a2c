r"""Classic (non-graph) multimodal fusion, for comparison with graph fusion on the same inputs.

Every baseline reads what the graph models read: the node features of a PyG batch
(:meth:`GraphBuilder.collate`), embedded by the same :class:`~graphfuse.nn.NodeEncoders`, so that
methods differ only in how they fuse. The modalities of a sample are its node types; a modality
absent from a sample (no nodes of that type) is *masked*, never averaged in as zeros, and where a
fixed-size slot needs a value it holds a learned "absent" vector.

* :func:`dense_modalities`: per node type, the padded ``[B, L, C]`` tokens and their mask.
* :class:`ModalityEncoder`: a transformer over one modality's tokens, masked-mean pooled to
  ``[B, C]``, with a presence mask.
* Fusion of the per-modality vectors ``z [B, M, C]`` (with ``present [B, M]``):
  :class:`EarlyFusion` (concatenation + MLP), :class:`LateFusion` (a head per modality, predictions
  averaged), :class:`TensorFusion` (outer product, Zadeh et al. 2017) and
  :class:`LowRankTensorFusion` (its low-rank factorisation, Liu et al. 2018).
* Token-level fusion of ``h_dict``: :class:`TransformerFusion` (one transformer over the tokens of
  all modalities) and :class:`CrossModalTransformer` (MulT, Tsai et al. 2019).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torch_geometric.utils import to_dense_batch

from graphfuse.checks import check_choice, check_int
from graphfuse.nn.heads import ClassificationHead, RegressionHead
from graphfuse.nn.readout import _check_node_types, _check_num_samples, check_known_node_types, check_node_dicts

__all__ = [
    "CrossModalTransformer",
    "EarlyFusion",
    "LateFusion",
    "LowRankTensorFusion",
    "ModalityEncoder",
    "TensorFusion",
    "TransformerFusion",
    "dense_modalities",
]

LATE_TASKS = ("classification", "multilabel", "regression")
MAX_TENSOR_CHANNELS = 2 ** 20


# Helpers ------------------------------------------------------------------------------------------
def dense_modalities(h_dict: Mapping[str, Tensor], batch_dict: Mapping[str, Tensor],
                     num_samples: int) -> dict[str, tuple[Tensor, Tensor]]:
    r"""The tokens of each node type as a padded batch, with
    :func:`torch_geometric.utils.to_dense_batch`.

    Args:
        h_dict (Mapping[str, Tensor]): node features :math:`(|\mathcal{V}_t|, C)` per node type (a
            type may have no nodes).
        batch_dict (Mapping[str, Tensor]): the sample of each node, sorted, per node type.
        num_samples (int): :math:`B`, the number of samples (``batch.num_graphs``).

    Returns:
        dict: ``{t: (x, mask)}`` with ``x`` :math:`(B, L_t, C)` (zeros at padding) and ``mask``
        :math:`(B, L_t)` bool, :math:`L_t` the most nodes of type :math:`t` in a sample (0 when the
        type has no nodes in the batch).
    """
    check_node_dicts(h_dict, batch_dict, None, "dense_modalities")
    _check_num_samples(num_samples, "dense_modalities")
    out = {}
    for node_type, h in h_dict.items():
        batch = batch_dict[node_type].to(device=h.device, dtype=torch.long)
        out[node_type] = to_dense_batch(h, batch, batch_size=num_samples)
    return out


def masked_mean(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Mean over the valid positions ``[B, L, C] -> [B, C]`` (float32 sums, zeros for a row
    without any) and the rows that have one ``[B]``."""
    present = mask.any(dim=1)
    total = x.float().masked_fill(~mask.unsqueeze(-1), 0.0).sum(dim=1)
    count = mask.sum(dim=1, keepdim=True).clamp(min=1)
    return (total / count).to(x.dtype), present


def _key_padding(mask: Tensor) -> Tensor:
    """``~mask`` as a key padding mask, with the first key of a row without valid keys unmasked:
    attention over no keys at all is a softmax over nothing (NaN). Callers discard such rows."""
    padding = ~mask
    if padding.size(1) == 0:
        return padding
    return torch.cat([padding[:, :1] & mask.any(dim=1, keepdim=True), padding[:, 1:]], dim=1)


def _check_heads(owner: str, channels: int, heads: int) -> None:
    check_int(heads, f"{owner} 'heads'")
    if channels % heads:
        raise ValueError(f"{owner} splits {channels} channels over heads={heads}; pick a number of heads that "
                         f"divides 'channels'")


def _check_common(owner: str, channels: int, num_layers: int, heads: int, ffn_ratio: float, dropout: float) -> None:
    check_int(channels, f"{owner} 'channels'")
    check_int(num_layers, f"{owner} 'num_layers'")
    _check_heads(owner, channels, heads)
    if isinstance(ffn_ratio, bool) or not isinstance(ffn_ratio, (int, float)) or not ffn_ratio > 0:
        raise ValueError(f"{owner} 'ffn_ratio' must be a positive number, got {ffn_ratio!r}")
    _check_dropout(owner, dropout)


def _check_dropout(owner: str, dropout: float) -> None:
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"{owner} 'dropout' must be in [0, 1), got {dropout!r}")


def _encoder_layer(channels: int, heads: int, ffn_ratio: float, dropout: float,
                   factory: dict) -> torch.nn.TransformerEncoderLayer:
    return torch.nn.TransformerEncoderLayer(channels, heads, max(1, int(ffn_ratio * channels)), dropout,
                                            activation="gelu", batch_first=True, norm_first=True, **factory)


def _reset_transformer(module: torch.nn.Module) -> None:
    """Resets the linear, norm and attention layers under ``module`` (attention last: it zeroes the
    biases of its input and output projections)."""
    for child in module.modules():
        if isinstance(child, (torch.nn.Linear, torch.nn.LayerNorm)):
            child.reset_parameters()
    for child in module.modules():
        if isinstance(child, torch.nn.MultiheadAttention):
            child._reset_parameters()


def _run_layers(layers: torch.nn.ModuleList, norm: torch.nn.Module, x: Tensor, mask: Tensor) -> Tensor:
    if x.size(1) == 0:
        return x
    padding = _key_padding(mask)
    for layer in layers:
        x = layer(x, src_key_padding_mask=padding)
    return norm(x)


def _check_vectors(owner: str, z: Tensor, present: Tensor, num_modalities: int, channels: int) -> None:
    if (not isinstance(z, Tensor) or not isinstance(present, Tensor) or z.dim() != 3
            or tuple(z.shape[1:]) != (num_modalities, channels) or present.dtype != torch.bool
            or tuple(present.shape) != tuple(z.shape[:2])):
        raise ValueError(f"{owner} expects modality vectors z [B, {num_modalities}, {channels}] and a bool mask "
                         f"present [B, {num_modalities}], got z {tuple(getattr(z, 'shape', ()))} and present "
                         f"{tuple(getattr(present, 'shape', ()))} of dtype {getattr(present, 'dtype', None)}; "
                         f"stack the ModalityEncoder outputs of the modalities along dim 1")


def _mlp(in_channels: int, hidden: int, out_channels: int, dropout: float, factory: dict) -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Linear(in_channels, hidden, **factory), torch.nn.GELU(),
                               torch.nn.Dropout(dropout), torch.nn.Linear(hidden, out_channels, **factory))


def _with_absent(z: Tensor, present: Tensor, absent: Tensor) -> Tensor:
    """``z`` with the slots of absent modalities replaced by their learned ``absent`` vectors."""
    return torch.where(present.unsqueeze(-1), z, absent.to(z.dtype).unsqueeze(0).expand_as(z))


# Per-modality encoder -----------------------------------------------------------------------------
class ModalityEncoder(torch.nn.Module):
    r"""A transformer over the tokens of one modality, then masked mean pooling.

    .. math::
        \mathbf{H} = \mathrm{LN}\big(\mathrm{Transformer}^{L}(\mathbf{X}; \mathbf{m})\big), \qquad
        \mathbf{z} = \frac{1}{\sum_i m_i} \sum_{i:\,m_i} \mathbf{H}_i, \qquad
        \mathrm{present} = \textstyle\bigvee_i m_i

    Pre-norm :class:`torch.nn.TransformerEncoderLayer` blocks attend over the valid tokens only (a
    key padding mask), so a sample's output does not depend on how much it was padded. A sample
    without tokens (the modality is absent) gets ``present = False`` and zeros as a placeholder
    (never NaN): consumers must read ``present``.

    Args:
        channels (int): features per token, :math:`C`.
        num_layers (int, optional): transformer layers. (default: :obj:`1`)
        heads (int, optional): attention heads (dividing ``channels``). (default: :obj:`4`)
        ffn_ratio (float, optional): feed-forward size over ``channels``. (default: :obj:`2.0`)
        dropout (float, optional): in attention and feed-forward layers. (default: :obj:`0.1`)
        device (torch.device, optional): device of the parameters. (default: :obj:`None`)
        dtype (torch.dtype, optional): dtype of the parameters. (default: :obj:`None`)

    Shapes:
        - **input:** tokens :math:`(B, L, C)`, mask :math:`(B, L)` bool (as from :func:`dense_modalities`)
        - **output:** :math:`(B, C)`, present :math:`(B,)` bool
    """

    def __init__(self, channels: int, num_layers: int = 1, heads: int = 4, ffn_ratio: float = 2.0,
                 dropout: float = 0.1, device=None, dtype=None) -> None:
        super().__init__()
        _check_common("ModalityEncoder", channels, num_layers, heads, ffn_ratio, dropout)
        factory = dict(device=device, dtype=dtype)
        self.channels, self.num_layers, self.heads = channels, num_layers, heads
        self.layers = torch.nn.ModuleList(_encoder_layer(channels, heads, ffn_ratio, dropout, factory)
                                          for _ in range(num_layers))
        self.norm = torch.nn.LayerNorm(channels, **factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_transformer(self)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        if (x.dim() != 3 or x.size(-1) != self.channels or mask.dtype != torch.bool
                or tuple(mask.shape) != tuple(x.shape[:2])):
            raise ValueError(f"ModalityEncoder expects tokens [B, L, {self.channels}] and a bool mask [B, L], got "
                             f"{tuple(x.shape)} and {tuple(mask.shape)} of dtype {mask.dtype}; pad them with "
                             f"graphfuse.nn.dense_modalities")
        return masked_mean(_run_layers(self.layers, self.norm, x, mask), mask)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, num_layers={self.num_layers}, heads={self.heads})"


# Fusion of per-modality vectors -------------------------------------------------------------------
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
        hidden (int, optional): hidden size of the MLP (default: ``channels``).
        dropout (float, optional): dropout in the MLP. (default: :obj:`0.0`)
        device (torch.device, optional): device of the parameters. (default: :obj:`None`)
        dtype (torch.dtype, optional): dtype of the parameters. (default: :obj:`None`)

    Shapes:
        - **input:** z :math:`(B, M, C)`, present :math:`(B, M)` bool
        - **output:** :math:`(B, C_{out})`
    """

    def __init__(self, channels: int, num_modalities: int, out_channels: int | None = None,
                 hidden: int | None = None, dropout: float = 0.0, device=None, dtype=None) -> None:
        super().__init__()
        check_int(channels, "EarlyFusion 'channels'")
        check_int(num_modalities, "EarlyFusion 'num_modalities'")
        out_channels, hidden = out_channels or channels, hidden or channels
        check_int(out_channels, "EarlyFusion 'out_channels'")
        check_int(hidden, "EarlyFusion 'hidden'")
        _check_dropout("EarlyFusion", dropout)
        factory = dict(device=device, dtype=dtype)
        self.channels, self.num_modalities, self.out_channels = channels, num_modalities, out_channels
        self.absent = torch.nn.Parameter(torch.empty(num_modalities, channels, **factory))
        self.mlp = _mlp(num_modalities * channels, hidden, out_channels, dropout, factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.normal_(self.absent, std=0.02)
        for module in self.mlp:
            if isinstance(module, torch.nn.Linear):
                module.reset_parameters()

    def forward(self, z: Tensor, present: Tensor) -> Tensor:
        _check_vectors("EarlyFusion", z, present, self.num_modalities, self.channels)
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
        hidden (int, optional): hidden size of two-layer per-modality heads. (default: :obj:`None`)
        dropout (float, optional): dropout in the heads. (default: :obj:`0.0`)
        device (torch.device, optional): device of the parameters. (default: :obj:`None`)
        dtype (torch.dtype, optional): dtype of the parameters. (default: :obj:`None`)

    Shapes:
        - **input:** z :math:`(B, M, C)`, present :math:`(B, M)` bool, every sample with at least
          one modality present
        - **output:** :math:`(B, C_{out})` float32 (log-probabilities, logits or predictions)
    """

    def __init__(self, channels: int, num_modalities: int, out_channels: int, task: str = "classification",
                 hidden: int | None = None, dropout: float = 0.0, device=None, dtype=None) -> None:
        super().__init__()
        check_int(channels, "LateFusion 'channels'")
        check_int(num_modalities, "LateFusion 'num_modalities'")
        check_choice(task, LATE_TASKS, "LateFusion 'task'")
        factory = dict(device=device, dtype=dtype)
        self.channels, self.num_modalities, self.task = channels, num_modalities, task
        self.multilabel = task == "multilabel"
        if task == "regression":
            heads = [RegressionHead(channels, out_channels, hidden, dropout, **factory) for _ in range(num_modalities)]
        else:
            heads = [ClassificationHead(channels, out_channels, hidden, dropout, multilabel=self.multilabel, **factory)
                     for _ in range(num_modalities)]
        self.heads = torch.nn.ModuleList(heads)
        self.out_channels = out_channels
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for head in self.heads:
            head.reset_parameters()

    def predictions(self, z: Tensor, present: Tensor) -> Tensor:
        r"""Each modality's own prediction :math:`(B, M, C_{out})` float32 (log-probabilities for
        classification); rows of absent modalities are zeros."""
        _check_vectors("LateFusion", z, present, self.num_modalities, self.channels)
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
        hidden (int, optional): hidden size of the MLP (default: ``channels``).
        dropout (float, optional): dropout in the MLP. (default: :obj:`0.0`)
        device (torch.device, optional): device of the parameters. (default: :obj:`None`)
        dtype (torch.dtype, optional): dtype of the parameters. (default: :obj:`None`)

    Shapes:
        - **input:** z :math:`(B, M, C)`, present :math:`(B, M)` bool
        - **output:** :math:`(B, C_{out})`
    """

    def __init__(self, channels: int, num_modalities: int, tensor_dim: int = 8, out_channels: int | None = None,
                 hidden: int | None = None, dropout: float = 0.0, device=None, dtype=None) -> None:
        super().__init__()
        check_int(channels, "TensorFusion 'channels'")
        check_int(num_modalities, "TensorFusion 'num_modalities'")
        check_int(tensor_dim, "TensorFusion 'tensor_dim'")
        out_channels, hidden = out_channels or channels, hidden or channels
        check_int(out_channels, "TensorFusion 'out_channels'")
        check_int(hidden, "TensorFusion 'hidden'")
        _check_dropout("TensorFusion", dropout)
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
        self.mlp = _mlp(self.tensor_channels, hidden, out_channels, dropout, factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in (*self.proj, *self.mlp):
            if isinstance(module, torch.nn.Linear):
                module.reset_parameters()
        torch.nn.init.normal_(self.absent, std=0.02)

    def factors(self, z: Tensor, present: Tensor) -> Tensor:
        r"""The extended projections :math:`\mathbf{u}_m`: :math:`(B, M, d + 1)`."""
        _check_vectors("TensorFusion", z, present, self.num_modalities, self.channels)
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
        _check_vectors("LowRankTensorFusion", z, present, self.num_modalities, self.channels)
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


# Token-level fusion -------------------------------------------------------------------------------
class TransformerFusion(torch.nn.Module):
    r"""One transformer over the tokens of all modalities of a sample, each token tagged with a
    learned embedding of its modality, then masked mean pooling:

    .. math::
        \mathbf{X} = \big\Vert_{t} \left(\mathbf{H}_t + \mathbf{1}\,\mathbf{e}_t^{\top}\right), \qquad
        \mathbf{h} = \mathrm{mean}_{\text{valid } i}\,
        \mathrm{LN}\big(\mathrm{Transformer}^{L}(\mathbf{X}; \mathbf{m})\big)_i

    (concatenation along the token axis). The nodes of each sample are gathered into one padded
    sequence with a single key padding mask, so absent modalities simply contribute no tokens. A
    sample without any token gets zeros.

    Args:
        channels (int): features per token, :math:`C`.
        node_types (Sequence[str]): the modalities (node types) it reads; ``h_dict`` may hold a
            subset of them.
        num_layers (int, optional): transformer layers. (default: :obj:`1`)
        heads (int, optional): attention heads (dividing ``channels``). (default: :obj:`4`)
        ffn_ratio (float, optional): feed-forward size over ``channels``. (default: :obj:`2.0`)
        dropout (float, optional): in attention and feed-forward layers. (default: :obj:`0.1`)
        device (torch.device, optional): device of the parameters. (default: :obj:`None`)
        dtype (torch.dtype, optional): dtype of the parameters. (default: :obj:`None`)

    Shapes:
        - **input:** ``h_dict`` :math:`\{t: (|\mathcal{V}_t|, C)\}`, ``batch_dict``
          :math:`\{t: (|\mathcal{V}_t|,)\}`, ``num_samples`` :math:`B`
        - **output:** :math:`(B, C)`
    """

    def __init__(self, channels: int, node_types: Sequence[str], num_layers: int = 1, heads: int = 4,
                 ffn_ratio: float = 2.0, dropout: float = 0.1, device=None, dtype=None) -> None:
        super().__init__()
        _check_common("TransformerFusion", channels, num_layers, heads, ffn_ratio, dropout)
        self.node_types = _check_node_types(node_types, "TransformerFusion")
        factory = dict(device=device, dtype=dtype)
        self.channels, self.num_layers, self.heads = channels, num_layers, heads
        self.out_channels = channels
        self.type_embedding = torch.nn.Embedding(len(self.node_types), channels, **factory)
        self.layers = torch.nn.ModuleList(_encoder_layer(channels, heads, ffn_ratio, dropout, factory)
                                          for _ in range(num_layers))
        self.norm = torch.nn.LayerNorm(channels, **factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.normal_(self.type_embedding.weight, std=0.02)
        _reset_transformer(self)

    def tokens(self, h_dict: Mapping[str, Tensor], batch_dict: Mapping[str, Tensor],
               num_samples: int) -> tuple[Tensor, Tensor]:
        r"""The padded tokens of each sample, all modalities together, with their type embeddings:
        :math:`(B, L, C)` and the mask :math:`(B, L)`."""
        check_known_node_types(h_dict, self.node_types, "TransformerFusion")
        check_node_dicts(h_dict, batch_dict, self.channels, "TransformerFusion")
        _check_num_samples(num_samples, "TransformerFusion")
        types = [t for t in self.node_types if t in h_dict]
        device = h_dict[types[0]].device
        x = torch.cat([h_dict[t] + self.type_embedding.weight[self.node_types.index(t)].to(h_dict[t].dtype)
                       for t in types])
        batch = torch.cat([batch_dict[t].to(device=device, dtype=torch.long) for t in types])
        order = torch.sort(batch, stable=True).indices
        return to_dense_batch(x[order], batch[order], batch_size=num_samples)

    def forward(self, h_dict: Mapping[str, Tensor], batch_dict: Mapping[str, Tensor], num_samples: int) -> Tensor:
        x, mask = self.tokens(h_dict, batch_dict, num_samples)
        return masked_mean(_run_layers(self.layers, self.norm, x, mask), mask)[0]

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, node_types={self.node_types}, "
                f"num_layers={self.num_layers}, heads={self.heads})")


class _CrossModalLayer(torch.nn.Module):
    """Pre-norm cross-modal attention (queries from the target, keys and values from the source)
    and a feed-forward network, each residual."""

    def __init__(self, channels: int, heads: int, ffn_ratio: float, dropout: float, factory: dict) -> None:
        super().__init__()
        self.norm_query = torch.nn.LayerNorm(channels, **factory)
        self.norm_source = torch.nn.LayerNorm(channels, **factory)
        self.attention = torch.nn.MultiheadAttention(channels, heads, dropout=dropout, batch_first=True, **factory)
        self.norm_ffn = torch.nn.LayerNorm(channels, **factory)
        self.ffn = _mlp(channels, max(1, int(ffn_ratio * channels)), channels, dropout, factory)
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, x: Tensor, source: Tensor, source_mask: Tensor) -> Tensor:
        if source.size(1) > 0:
            has_source = source_mask.any(dim=1)
            keys = self.norm_source(source)
            message = self.attention(self.norm_query(x), keys, keys, key_padding_mask=_key_padding(source_mask),
                                     need_weights=False)[0]
            # A query without keys (the source is absent from its sample) receives nothing.
            x = x + self.dropout(message.masked_fill(~has_source.view(-1, 1, 1), 0.0))
        return x + self.dropout(self.ffn(self.norm_ffn(x)))


class CrossModalTransformer(torch.nn.Module):
    r"""The Multimodal Transformer (MulT, Tsai et al., 2019): every modality attends to every other
    one through its own stack of cross-modal layers, then to itself.

    For a target modality :math:`\alpha` and a source :math:`\beta \neq \alpha`, with
    :math:`\mathbf{Y}^{[0]} = \mathbf{H}_\alpha`, each of the ``num_layers`` pre-norm layers is

    .. math::
        \mathbf{Y} &\leftarrow \mathbf{Y} + \mathrm{MHA}\big(\mathrm{LN}(\mathbf{Y}),\,
        \mathrm{LN}(\mathbf{H}_\beta),\, \mathrm{LN}(\mathbf{H}_\beta)\big) \\
        \mathbf{Y} &\leftarrow \mathbf{Y} + \mathrm{FFN}\big(\mathrm{LN}(\mathbf{Y})\big)

    giving :math:`\mathbf{Y}_{\beta \to \alpha}`. The target's outputs over its sources are
    concatenated along channels, projected back to :math:`C`, passed through one self-attention
    layer, normalised and mean pooled over the target's tokens,

    .. math::
        \mathbf{z}_\alpha = \mathrm{mean}\; \mathrm{LN}\Big(\mathrm{SelfAttn}\big(\mathbf{W}_\alpha
        \big[\mathbf{Y}_{\beta_1 \to \alpha} \,\Vert\, \mathbf{Y}_{\beta_2 \to \alpha} \,\Vert\,
        \cdots\big]\big)\Big), \qquad \mathbf{h} = \big\Vert_{\alpha} \mathbf{z}_\alpha

    Missing modalities are masked: a target token whose sample lacks the source receives a zero
    attention message (never NaN), and an absent target's slot of :math:`\mathbf{h}` holds its
    learned vector :math:`\mathbf{e}_\alpha`.

    Args:
        channels (int): features per token, :math:`C`.
        node_types (Sequence[str]): the modalities (at least two); ``h_dict`` may hold a subset.
        num_layers (int, optional): cross-modal layers per (target, source) pair. (default: :obj:`1`)
        heads (int, optional): attention heads (dividing ``channels``). (default: :obj:`4`)
        ffn_ratio (float, optional): feed-forward size over ``channels``. (default: :obj:`2.0`)
        dropout (float, optional): in attention and feed-forward layers. (default: :obj:`0.1`)
        device (torch.device, optional): device of the parameters. (default: :obj:`None`)
        dtype (torch.dtype, optional): dtype of the parameters. (default: :obj:`None`)

    Shapes:
        - **input:** ``h_dict`` :math:`\{t: (|\mathcal{V}_t|, C)\}`, ``batch_dict``
          :math:`\{t: (|\mathcal{V}_t|,)\}`, ``num_samples`` :math:`B`
        - **output:** :math:`(B, T \cdot C)` (``out_channels``), :math:`T` = ``len(node_types)``
    """

    def __init__(self, channels: int, node_types: Sequence[str], num_layers: int = 1, heads: int = 4,
                 ffn_ratio: float = 2.0, dropout: float = 0.1, device=None, dtype=None) -> None:
        super().__init__()
        _check_common("CrossModalTransformer", channels, num_layers, heads, ffn_ratio, dropout)
        self.node_types = _check_node_types(node_types, "CrossModalTransformer")
        if len(self.node_types) < 2:
            raise ValueError(f"CrossModalTransformer attends across modalities and needs at least two node types, "
                             f"got {self.node_types}; for one modality use ModalityEncoder or TransformerFusion")
        factory = dict(device=device, dtype=dtype)
        self.channels, self.num_layers, self.heads = channels, num_layers, heads
        num_types = len(self.node_types)
        self.out_channels = num_types * channels
        self.cross = torch.nn.ModuleDict({
            target: torch.nn.ModuleDict({
                source: torch.nn.ModuleList(_CrossModalLayer(channels, heads, ffn_ratio, dropout, factory)
                                            for _ in range(num_layers))
                for source in self.node_types if source != target})
            for target in self.node_types})
        self.proj = torch.nn.ModuleDict({t: torch.nn.Linear((num_types - 1) * channels, channels, **factory)
                                         for t in self.node_types})
        self.self_attention = torch.nn.ModuleDict({t: _encoder_layer(channels, heads, ffn_ratio, dropout, factory)
                                                   for t in self.node_types})
        self.norm = torch.nn.ModuleDict({t: torch.nn.LayerNorm(channels, **factory) for t in self.node_types})
        self.absent = torch.nn.Parameter(torch.empty(num_types, channels, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_transformer(self)
        torch.nn.init.normal_(self.absent, std=0.02)

    def forward(self, h_dict: Mapping[str, Tensor], batch_dict: Mapping[str, Tensor], num_samples: int) -> Tensor:
        check_known_node_types(h_dict, self.node_types, "CrossModalTransformer")
        check_node_dicts(h_dict, batch_dict, self.channels, "CrossModalTransformer")
        dense = dense_modalities(h_dict, batch_dict, num_samples)
        first = next(iter(h_dict.values()))
        empty = (first.new_zeros(num_samples, 0, self.channels),
                 torch.zeros(num_samples, 0, dtype=torch.bool, device=first.device))
        dense = {t: dense.get(t, empty) for t in self.node_types}
        pooled = []
        for index, target in enumerate(self.node_types):
            x, mask = dense[target]
            if x.size(1) == 0:  # no sample has the target: every slot is absent
                pooled.append(self.absent[index].to(x.dtype).expand(num_samples, -1))
                continue
            outputs = []
            for source, layers in self.cross[target].items():
                y = x
                for layer in layers:
                    y = layer(y, *dense[source])
                outputs.append(y)
            y = self.proj[target](torch.cat(outputs, dim=-1))
            y = self.norm[target](self.self_attention[target](y, src_key_padding_mask=_key_padding(mask)))
            z, present = masked_mean(y, mask)
            pooled.append(torch.where(present.unsqueeze(-1), z, self.absent[index].to(z.dtype)))
        dtype = pooled[0].dtype
        for p in pooled[1:]:
            dtype = torch.promote_types(dtype, p.dtype)
        return torch.cat([p.to(dtype) for p in pooled], dim=-1)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, node_types={self.node_types}, "
                f"num_layers={self.num_layers}, heads={self.heads})")
