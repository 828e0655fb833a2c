"""Readouts: fused node states per node type -> one vector per sample, robust to missing modalities.

:class:`TypePooling` pools each node type of each sample and says which (sample, type) pairs exist,
:class:`TypeFusion` combines the pooled types of a sample over the present ones only,
:class:`VirtualNodeReadout` reads the builder's virtual fusion nodes, and :class:`Readout` puts them together
(``pool="mean" | "max" | "sum" | "attention"``, ``fuse="attention" | "gate" | "concat" | "virtual"``).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torch_geometric.utils import scatter, softmax

from graphfuse.checks import check_choice, check_int
from graphfuse.debug import is_debug_enabled

POOLS = ("mean", "max", "sum", "attention")
FUSIONS = ("attention", "gate", "concat", "bilinear")
READOUT_FUSIONS = (*FUSIONS, "virtual")
#: Scale of the bilinear pair projections at initialisation, over torch.nn.Linear's default range. A
#: product of two projections of pooled states starts small, and a task that needs the comparison
#: (the embedded ``match``) sits at chance until the products grow: with gain 1 it left the plateau
#: after about 8 epochs, with gain 4 after 3 to 6 (3,000 training pairs, batch 32).
PAIR_GAIN = 4.0


def check_node_types(node_types: Sequence[str], owner: str) -> list[str]:
    """``node_types`` as a list of distinct node type names (at least one); ``owner`` names the
    caller in the errors."""
    if isinstance(node_types, str) or not isinstance(node_types, Sequence):
        raise TypeError(f"{owner} 'node_types' must be a sequence of node type names, got "
                        f"{type(node_types).__name__} {node_types!r}; e.g. node_types=['text', 'image']")
    node_types = list(node_types)
    if not node_types or not all(isinstance(t, str) for t in node_types) or len(set(node_types)) != len(node_types):
        raise ValueError(f"{owner} 'node_types' must be distinct node type names (at least one), got {node_types!r}")
    return node_types


def check_known_node_types(h_dict: Mapping[str, Tensor], node_types: Sequence[str], owner: str) -> None:
    """``h_dict`` holds at least one node type (possibly without nodes), all among ``node_types``."""
    unknown = [node_type for node_type in h_dict if node_type not in node_types]
    if unknown:
        raise ValueError(f"{owner} received unknown node types {unknown}; it knows {list(node_types)} "
                         f"(drop the others from h_dict or build it with them in 'node_types')")
    if not h_dict:
        raise ValueError(f"{owner} received an empty 'h_dict'; pass at least one of {list(node_types)} "
                         f"(it may have 0 nodes)")


def check_node_dicts(h_dict: Mapping[str, Tensor], batch_dict: Mapping[str, Tensor], channels: int | None,
                 owner: str) -> None:
    """``h_dict`` (features ``[N_t, channels]`` per node type) and ``batch_dict`` (one sample index
    per node) agree; ``owner`` names the caller in the errors."""
    if not isinstance(h_dict, Mapping) or not isinstance(batch_dict, Mapping):
        raise TypeError(f"{owner} received h_dict of type {type(h_dict).__name__} and batch_dict of type "
                        f"{type(batch_dict).__name__}; pass dicts per node type (e.g. the fusion encoder's output "
                        f"and the batch's 'batch_dict')")
    missing = [node_type for node_type in h_dict if node_type not in batch_dict]
    if missing:
        raise ValueError(f"{owner} received node types {missing} without a sample index in 'batch_dict' (which "
                         f"has {list(batch_dict)}); pass the batch's 'batch_dict'")
    mismatched = {node_type: (h.size(0), batch_dict[node_type].numel()) for node_type, h in h_dict.items()
                  if h.size(0) != batch_dict[node_type].numel()}
    if mismatched:
        raise ValueError(f"{owner} received features and sample indices of different lengths "
                         f"(node type: (features, indices)): {mismatched}; pass one index per node")
    shapes = {node_type: tuple(h.shape) for node_type, h in h_dict.items()
              if h.dim() != 2 or (channels is not None and h.size(-1) != channels)}
    if shapes:
        raise ValueError(f"{owner} expects node features of shape [num_nodes, {channels or 'C'}] per node type, "
                         f"got {shapes}; build it with the fusion encoder's 'channels'")


def check_num_samples(num_samples: int, owner: str) -> None:
    """``num_samples`` is a positive int (or a symbolic size under ``torch.compile``)."""
    if not isinstance(num_samples, torch.SymInt):  # torch.compile may pass a symbolic size
        check_int(num_samples, f"{owner} 'num_samples'")


def _common_dtype(tensors: Sequence[Tensor]) -> torch.dtype:
    dtype = tensors[0].dtype
    for tensor in tensors[1:]:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


class TypePooling(torch.nn.Module):
    r"""Pools the nodes of each node type of each sample: one vector per (sample, node type) and a
    mask of the pairs that exist.

    .. math::
        \mathbf{z}_{b,t} = \underset{i \in \mathcal{V}_t(b)}{\mathrm{reduce}} \; \mathbf{h}_i,
        \qquad \mathrm{present}_{b,t} = |\mathcal{V}_t(b)| > 0

    where :math:`\mathcal{V}_t(b)` are the nodes of type :math:`t` of sample :math:`b`. With
    ``reduce="attention"`` (global attention pooling, a gate per node type)

    .. math::
        s_i = \mathbf{w}_t^{\top} \tanh(\mathbf{W}_t \mathbf{h}_i + \mathbf{b}_t), \qquad
        \alpha_i = \frac{\exp(s_i)}{\sum_{j \in \mathcal{V}_t(b)} \exp(s_j)}, \qquad
        \mathbf{z}_{b,t} = \sum_{i \in \mathcal{V}_t(b)} \alpha_i \mathbf{h}_i

    A sample without nodes of type :math:`t` (a missing modality), or a node type left out of
    ``h_dict`` altogether, has ``present[b, t] = False``: that pair is *masked out, not zero-filled*.
    Its row of ``pooled`` holds zeros only as a placeholder; consumers must read ``present``
    (as :class:`TypeFusion` does) and never treat it as a pooled zero vector.

    Args:
        channels (int): features per node.
        node_types (Sequence[str]): the node types to pool, in the order of the output's type axis.
        reduce (str, optional): ``"mean"``, ``"max"``, ``"sum"`` or ``"attention"``. (default: :obj:`"mean"`)
        device (torch.device, optional): device of the parameters. (default: :obj:`None`)
        dtype (torch.dtype, optional): dtype of the parameters. (default: :obj:`None`)

    Shapes:
        - **input:** ``h_dict`` :math:`\{t: (|\mathcal{V}_t|, C)\}`, ``batch_dict``
          :math:`\{t: (|\mathcal{V}_t|,)\}`, ``num_samples`` :math:`B`
        - **output:** pooled :math:`(B, T, C)`, present :math:`(B, T)` bool
    """

    def __init__(self, channels: int, node_types: Sequence[str], reduce: str = "mean", device=None,
                 dtype=None) -> None:
        super().__init__()
        check_int(channels, "TypePooling 'channels'")
        check_choice(reduce, POOLS, "TypePooling 'reduce'")
        self.channels, self.reduce = channels, reduce
        self.node_types = check_node_types(node_types, "TypePooling")
        factory = dict(device=device, dtype=dtype)
        num_types = len(self.node_types)
        if reduce == "attention":
            self.att_weight = torch.nn.Parameter(torch.empty(num_types, channels, channels, **factory))
            self.att_bias = torch.nn.Parameter(torch.empty(num_types, channels, **factory))
            self.att_vector = torch.nn.Parameter(torch.empty(num_types, channels, **factory))
        else:
            self.register_parameter("att_weight", None)
            self.register_parameter("att_bias", None)
            self.register_parameter("att_vector", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.att_weight is not None:
            bound = 1.0 / math.sqrt(self.channels)  # torch.nn.Linear's default range
            for parameter in (self.att_weight, self.att_bias, self.att_vector):
                torch.nn.init.uniform_(parameter, -bound, bound)

    def attention_scores(self, h: Tensor, type_index: int) -> Tensor:
        r"""The unnormalised scores :math:`s_i` (float32) of nodes ``h`` of the ``type_index``-th node type."""
        if self.att_weight is None:
            raise ValueError(f"TypePooling.attention_scores needs reduce='attention', got reduce={self.reduce!r}")
        hidden = torch.tanh(torch.nn.functional.linear(h, self.att_weight[type_index], self.att_bias[type_index]))
        return (hidden.float() * self.att_vector[type_index].float()).sum(-1)

    def _pool(self, h: Tensor, batch: Tensor, type_index: int, num_samples: int) -> Tensor:
        if self.reduce == "max":
            return scatter(h, batch, dim=0, dim_size=num_samples, reduce="max")
        if self.reduce == "attention":
            alpha = softmax(self.attention_scores(h, type_index), batch, num_nodes=num_samples)
            return scatter(h.float() * alpha.unsqueeze(-1), batch, dim=0, dim_size=num_samples, reduce="sum")
        # Accumulate in float32 so bf16 features do not lose precision over many nodes.
        return scatter(h.float(), batch, dim=0, dim_size=num_samples, reduce=self.reduce)

    def forward(self, h_dict: Mapping[str, Tensor], batch_dict: Mapping[str, Tensor],
                num_samples: int) -> tuple[Tensor, Tensor]:
        check_known_node_types(h_dict, self.node_types, "TypePooling")
        check_node_dicts(h_dict, batch_dict, self.channels, "TypePooling")
        check_num_samples(num_samples, "TypePooling")
        dtype = _common_dtype(list(h_dict.values()))
        device = next(iter(h_dict.values())).device
        pooled, present = [], []
        for type_index, node_type in enumerate(self.node_types):
            if node_type not in h_dict:
                pooled.append(torch.zeros(num_samples, self.channels, device=device, dtype=dtype))
                present.append(torch.zeros(num_samples, device=device, dtype=torch.bool))
                continue
            h, batch = h_dict[node_type], batch_dict[node_type].to(device=device, dtype=torch.long)
            pooled.append(self._pool(h, batch, type_index, num_samples).to(dtype))
            present.append(torch.zeros(num_samples, device=device, dtype=torch.bool).index_fill_(0, batch, True))
        return torch.stack(pooled, dim=1), torch.stack(present, dim=1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, node_types={self.node_types}, reduce={self.reduce!r})"


class TypeFusion(torch.nn.Module):
    r"""Fuses the pooled node types of each sample into one vector, over the present types only.

    ``mode="attention"`` weighs the present types by a learned score,

    .. math::
        \alpha_{b,i} = \underset{i:\,\mathrm{present}_{b,i}}{\mathrm{softmax}}
        \left(\mathbf{v}^{\top} \tanh(\mathbf{W} \mathbf{z}_{b,i} + \mathbf{b})\right), \qquad
        \mathbf{h}_b = \sum_i \alpha_{b,i} \mathbf{z}_{b,i}

    ``mode="gate"`` gates every channel, with a projection shared across types and a bias per type,

    .. math::
        \mathbf{g}_{b,i} = \underset{i:\,\mathrm{present}_{b,i}}{\mathrm{softmax}}
        \left(\mathbf{U} \mathbf{z}_{b,i} + \mathbf{c}_i\right), \qquad
        \mathbf{h}_b = \sum_i \mathbf{g}_{b,i} \odot \mathbf{z}_{b,i}

    and ``mode="concat"`` concatenates the types, an absent type's slot holding a learned per-type
    "absent" embedding :math:`\mathbf{e}_i` instead of zeros:

    .. math::
        \mathbf{h}_b = \big\Vert_{i} \left(\mathbf{z}_{b,i} \text{ if } \mathrm{present}_{b,i}
        \text{ else } \mathbf{e}_i\right)

    ``mode="bilinear"`` adds to the concatenation the elementwise product of every pair of types,
    each projected by its own matrix :math:`\mathbf{P}_i` (a low-rank bilinear interaction, as in
    MLB, Kim et al. 2017), so that a linear head can compare modalities (does the image show what
    the audio says?) where concatenation would only add their evidence:

    .. math::
        \mathbf{h}_b = \big\Vert_{i} \tilde{\mathbf{z}}_{b,i} \;\Vert\; \big\Vert_{i<j}
        \left(\mathbf{P}_i^{\top} \tilde{\mathbf{z}}_{b,i}\right) \odot
        \left(\mathbf{P}_j^{\top} \tilde{\mathbf{z}}_{b,j}\right)

    with :math:`\tilde{\mathbf{z}}` the concatenation's slots (absent types as :math:`\mathbf{e}_i`).

    Absent types get weight exactly :math:`0` (their logits are masked with :math:`-\infty` before a
    float32 softmax), so whatever their rows of ``pooled`` hold never reaches the output.

    Args:
        channels (int): features per type, :math:`C`.
        num_types (int): node types, :math:`T`.
        mode (str, optional): ``"attention"``, ``"gate"``, ``"concat"`` or ``"bilinear"``.
            (default: :obj:`"attention"`)
        device (torch.device, optional): device of the parameters. (default: :obj:`None`)
        dtype (torch.dtype, optional): dtype of the parameters. (default: :obj:`None`)

    Shapes:
        - **input:** pooled :math:`(B, T, C)`, present :math:`(B, T)` bool (from :class:`TypePooling`)
        - **output:** :math:`(B, C)`, :math:`(B, T \cdot C)` for ``"concat"``, or
          :math:`(B, (T + T(T-1)/2) \cdot C)` for ``"bilinear"`` (see ``out_channels``)
    """

    def __init__(self, channels: int, num_types: int, mode: str = "attention", device=None, dtype=None) -> None:
        super().__init__()
        check_int(channels, "TypeFusion 'channels'")
        check_int(num_types, "TypeFusion 'num_types'")
        check_choice(mode, FUSIONS, "TypeFusion 'mode'")
        self.channels, self.num_types, self.mode = channels, num_types, mode
        self.pairs = [(i, j) for i in range(num_types) for j in range(i + 1, num_types)] if mode == "bilinear" else []
        if mode == "concat":
            self.out_channels = num_types * channels
        elif mode == "bilinear":
            self.out_channels = (num_types + len(self.pairs)) * channels
        else:
            self.out_channels = channels
        factory = dict(device=device, dtype=dtype)
        self.lin = self.score = None
        self.register_parameter("type_bias", None)
        self.register_parameter("absent", None)
        self.register_parameter("pair_weight", None)
        if mode == "attention":
            self.lin = torch.nn.Linear(channels, channels, **factory)
            self.score = torch.nn.Linear(channels, 1, bias=False, **factory)
        elif mode == "gate":
            self.lin = torch.nn.Linear(channels, channels, **factory)
            self.type_bias = torch.nn.Parameter(torch.empty(num_types, channels, **factory))
        else:
            self.absent = torch.nn.Parameter(torch.empty(num_types, channels, **factory))
            if mode == "bilinear":
                self.pair_weight = torch.nn.Parameter(torch.empty(num_types, channels, channels, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in (self.lin, self.score):
            if module is not None:
                module.reset_parameters()
        if self.type_bias is not None:
            torch.nn.init.zeros_(self.type_bias)
        if self.absent is not None:
            torch.nn.init.normal_(self.absent, std=0.02)
        if self.pair_weight is not None:
            # PAIR_GAIN times torch.nn.Linear's range: the products start at the slots' scale, where
            # a comparison task escapes its initial plateau early (see PAIR_GAIN).
            bound = PAIR_GAIN / math.sqrt(self.channels)
            torch.nn.init.uniform_(self.pair_weight, -bound, bound)

    def _check(self, pooled: Tensor, present: Tensor) -> None:
        if (not isinstance(pooled, Tensor) or not isinstance(present, Tensor) or pooled.dim() != 3
                or tuple(pooled.shape[1:]) != (self.num_types, self.channels) or present.dtype != torch.bool
                or tuple(present.shape) != tuple(pooled.shape[:2])):
            raise ValueError(f"TypeFusion expects pooled [B, {self.num_types}, {self.channels}] and a bool mask "
                             f"present [B, {self.num_types}], got pooled {tuple(getattr(pooled, 'shape', ()))} and "
                             f"present {tuple(getattr(present, 'shape', ()))} of dtype "
                             f"{getattr(present, 'dtype', None)}; pass TypePooling's output")
        # A sample with no present type would softmax over nothing and silently turn into NaN; the
        # check reads the mask (a host sync), so it runs in debug mode (see graphfuse.debug).
        if not is_debug_enabled():
            return
        empty = ~present.any(dim=1)
        if bool(empty.any()):
            samples = empty.nonzero().flatten().tolist()
            raise ValueError(f"TypeFusion received samples {samples} with none of its {self.num_types} node types "
                             f"present; every sample needs at least one node of the readout's node types")

    def weights(self, pooled: Tensor, present: Tensor) -> Tensor:
        r"""The type weights :math:`\alpha` of ``mode="attention"``: :math:`(B, T)` float32, rows sum to 1,
        exactly 0 for absent types."""
        if self.mode != "attention":
            raise ValueError(f"TypeFusion.weights needs mode='attention', got mode={self.mode!r}")
        self._check(pooled, present)
        return self._weights(pooled.masked_fill(~present.unsqueeze(-1), 0), present)

    def _weights(self, pooled: Tensor, present: Tensor) -> Tensor:
        logits = self.score(torch.tanh(self.lin(pooled))).squeeze(-1).float()
        return torch.softmax(logits.masked_fill(~present, float("-inf")), dim=1)

    def forward(self, pooled: Tensor, present: Tensor) -> Tensor:
        self._check(pooled, present)
        mask = present.unsqueeze(-1)
        if self.mode in ("concat", "bilinear"):
            absent = self.absent.to(pooled.dtype).unsqueeze(0).expand_as(pooled)
            slots = torch.where(mask, pooled, absent)
            if not self.pairs:
                return slots.flatten(1)
            projected = torch.einsum("btc,tcd->btd", slots, self.pair_weight.to(slots.dtype))
            products = [projected[:, i] * projected[:, j] for i, j in self.pairs]
            return torch.cat([slots.flatten(1), *products], dim=1)
        pooled = pooled.masked_fill(~mask, 0)  # whatever absent rows hold, keep it out of the gradients too
        if self.mode == "attention":
            weights = self._weights(pooled, present).unsqueeze(-1)
        else:
            logits = (self.lin(pooled) + self.type_bias.to(pooled.dtype)).float()
            weights = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=1)
        return (weights * pooled.float()).sum(dim=1).to(pooled.dtype)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, num_types={self.num_types}, mode={self.mode!r})"


class VirtualNodeReadout(torch.nn.Module):
    r"""The mean of each sample's virtual fusion nodes (added by :class:`graphfuse.VirtualNodes`).

    .. math::
        \mathbf{h}_b = \frac{1}{|\mathcal{V}_{\mathrm{virtual}}(b)|}
        \sum_{i \in \mathcal{V}_{\mathrm{virtual}}(b)} \mathbf{h}_i

    Args:
        node_type (str, optional): the virtual node type. (default: :obj:`"virtual"`)

    Shapes:
        - **input:** ``h_dict`` :math:`\{t: (|\mathcal{V}_t|, C)\}`, ``batch_dict``
          :math:`\{t: (|\mathcal{V}_t|,)\}`, ``num_samples`` :math:`B`
        - **output:** :math:`(B, C)`
    """

    def __init__(self, node_type: str = "virtual") -> None:
        super().__init__()
        if not isinstance(node_type, str):
            raise TypeError(f"VirtualNodeReadout 'node_type' must be a node type name, got {node_type!r}")
        self.node_type = node_type
        self.reset_parameters()

    def reset_parameters(self) -> None:
        pass  # no parameters

    def forward(self, h_dict: Mapping[str, Tensor], batch_dict: Mapping[str, Tensor], num_samples: int) -> Tensor:
        if not isinstance(h_dict, Mapping) or self.node_type not in h_dict:
            known = list(h_dict) if isinstance(h_dict, Mapping) else type(h_dict).__name__
            raise ValueError(f"VirtualNodeReadout found no node type {self.node_type!r} in h_dict (which has "
                             f"{known}); add graphfuse.VirtualNodes(node_type={self.node_type!r}) to the builder's "
                             f"cross edges")
        h_dict = {self.node_type: h_dict[self.node_type]}
        check_node_dicts(h_dict, batch_dict, None, "VirtualNodeReadout")
        check_num_samples(num_samples, "VirtualNodeReadout")
        h = h_dict[self.node_type]
        batch = batch_dict[self.node_type].to(device=h.device, dtype=torch.long)
        count = torch.zeros(num_samples, device=h.device, dtype=torch.long).index_add_(0, batch, torch.ones_like(batch))
        # A sample without a virtual node would silently read out zeros; the check reads the counts
        # (a host sync), so it runs in debug mode (see graphfuse.debug).
        empty = count == 0
        if is_debug_enabled() and bool(empty.any()):
            raise ValueError(f"VirtualNodeReadout received samples {empty.nonzero().flatten().tolist()} without a "
                             f"{self.node_type!r} node; build every sample with the builder that has VirtualNodes")
        return scatter(h.float(), batch, dim=0, dim_size=num_samples, reduce="sum").div(count.unsqueeze(-1)).to(h.dtype)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(node_type={self.node_type!r})"


class Readout(torch.nn.Module):
    r"""Fused node states -> one vector per sample: pools each node type (:class:`TypePooling`), then
    fuses the present types (:class:`TypeFusion`), or reads the virtual fusion nodes
    (:class:`VirtualNodeReadout`, ``fuse="virtual"``).

    .. math::
        \mathbf{z}_{b,t} = \mathrm{pool}\left(\{\mathbf{h}_i : i \in \mathcal{V}_t(b)\}\right), \qquad
        \mathbf{h}_b = \mathrm{fuse}\left(\{\mathbf{z}_{b,t} : \mathcal{V}_t(b) \neq \emptyset\}\right)

    Missing modalities are *masked out, not zero-filled*: a sample's output depends only on the node
    types it has. Every sample needs at least one node of ``node_types`` (else a ValueError).

    Args:
        channels (int): features per node, :math:`C`.
        node_types (Sequence[str]): the node types to read, in order (e.g. the builder's modalities).
            ``h_dict`` may hold a subset (e.g. only ``"text"`` to embed queries for retrieval).
        pool (str, optional): ``"mean"``, ``"max"``, ``"sum"`` or ``"attention"``; ignored with
            ``fuse="virtual"``. (default: :obj:`"mean"`)
        fuse (str, optional): ``"attention"``, ``"gate"``, ``"concat"``, ``"bilinear"`` or
            ``"virtual"`` (see :class:`TypeFusion`). (default: :obj:`"attention"`)
        virtual_node_type (str, optional): the virtual node type read by ``fuse="virtual"``; with
            another ``fuse`` it is dropped from ``h_dict`` unless listed in ``node_types``.
            (default: :obj:`"virtual"`)
        device (torch.device, optional): device of the parameters. (default: :obj:`None`)
        dtype (torch.dtype, optional): dtype of the parameters. (default: :obj:`None`)

    Shapes:
        - **input:** ``h_dict`` :math:`\{t: (|\mathcal{V}_t|, C)\}`, ``batch_dict``
          :math:`\{t: (|\mathcal{V}_t|,)\}`, ``num_samples`` :math:`B`
        - **output:** :math:`(B, \text{out\_channels})`: :math:`C`, :math:`T \cdot C` for ``"concat"``,
          :math:`(T + T(T-1)/2) \cdot C` for ``"bilinear"``

    Example:
        >>> readout = Readout(128, ["text", "image", "audio"], pool="attention", fuse="attention")
        >>> embedding = readout(encoder(h_dict, batch), batch.batch_dict, batch.num_graphs)
    """

    def __init__(self, channels: int, node_types: Sequence[str], pool: str = "mean", fuse: str = "attention",
                 virtual_node_type: str = "virtual", device=None, dtype=None) -> None:
        super().__init__()
        check_int(channels, "Readout 'channels'")
        check_choice(pool, POOLS, "Readout 'pool'")
        check_choice(fuse, READOUT_FUSIONS, "Readout 'fuse'")
        self.channels, self.pool_name, self.fuse_name = channels, pool, fuse
        self.node_types = check_node_types(node_types, "Readout")
        self.virtual_node_type = virtual_node_type
        factory = dict(device=device, dtype=dtype)
        if fuse == "virtual":
            self.pool = self.fuse = None
            self.virtual = VirtualNodeReadout(virtual_node_type)
            self.out_channels = channels
        else:
            self.virtual = None
            self.pool = TypePooling(channels, self.node_types, pool, **factory)
            self.fuse = TypeFusion(channels, len(self.node_types), fuse, **factory)
            self.out_channels = self.fuse.out_channels
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in (self.pool, self.fuse, self.virtual):
            if module is not None:
                module.reset_parameters()

    def _pooled(self, h_dict: Mapping[str, Tensor], batch_dict: Mapping[str, Tensor],
                num_samples: int) -> tuple[Tensor, Tensor]:
        if isinstance(h_dict, Mapping) and self.virtual_node_type in h_dict \
                and self.virtual_node_type not in self.node_types:
            h_dict = {t: h for t, h in h_dict.items() if t != self.virtual_node_type}
        return self.pool(h_dict, batch_dict, num_samples)

    def forward(self, h_dict: Mapping[str, Tensor], batch_dict: Mapping[str, Tensor], num_samples: int) -> Tensor:
        if self.virtual is not None:
            out = self.virtual(h_dict, batch_dict, num_samples)
            if out.size(-1) != self.channels:
                raise ValueError(f"Readout was built for {self.channels} channels but the virtual nodes have "
                                 f"{out.size(-1)}; build it with the fusion encoder's 'channels'")
            return out
        return self.fuse(*self._pooled(h_dict, batch_dict, num_samples))

    def type_weights(self, h_dict: Mapping[str, Tensor], batch_dict: Mapping[str, Tensor],
                     num_samples: int) -> Tensor:
        r"""The weight :math:`\alpha_{b,t}` of each node type in each sample's output, :math:`(B, T)` in the
        order of ``node_types`` (0 for absent types); needs ``fuse="attention"``."""
        if self.fuse_name != "attention":
            raise ValueError(f"Readout.type_weights needs fuse='attention', got fuse={self.fuse_name!r}; only "
                             f"attention fusion has one weight per node type")
        return self.fuse.weights(*self._pooled(h_dict, batch_dict, num_samples))

    def __repr__(self) -> str:
        if self.fuse_name == "virtual":
            detail = f"fuse='virtual', virtual_node_type={self.virtual_node_type!r}"
        else:
            detail = f"pool={self.pool_name!r}, fuse={self.fuse_name!r}"
        return f"{self.__class__.__name__}({self.channels}, node_types={self.node_types}, {detail})"
