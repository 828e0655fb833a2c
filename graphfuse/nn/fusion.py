"""Fusion blocks and the fusion encoder, configured by names (``conv="gcn" | "gat" | "hgt" | "gated"``)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from graphfuse.checks import check_choice, check_int, check_number, check_probability
from graphfuse.nn.context import ModalityContext
from graphfuse.nn.conv import GatedRelationalConv, RelationalConv, RelationalGATConv, RelationalGCNConv
from graphfuse.nn.conv.hgt import RelationalHGTConv
from graphfuse.nn.flat import FlatGraph, Metadata, Schema
from graphfuse.nn.knn import DynamicKNNEdges
from graphfuse.registry import Registry

ConvFactory = Callable[..., RelationalConv]
CONVS: Registry[ConvFactory] = Registry("fusion conv", hint="Register one with register_conv('{name}', factory)")
ACTIVATIONS = {"gelu": torch.nn.GELU, "relu": torch.nn.ReLU, "silu": torch.nn.SiLU}
NORMS = ("layer", "none")
KNN_UPDATES = ("block", "forward")


def register_conv(name: str, factory: ConvFactory) -> ConvFactory:
    """Registers ``factory(channels, metadata, heads, **kwargs)`` (a conv with ``channels`` in and
    out) under ``name``; a name can be registered once."""
    return CONVS.register(name, factory)


def list_convs() -> list[str]:
    """Names of the registered fusion convs."""
    return CONVS.names()


def create_conv(name: str, channels: int, metadata: Metadata | Schema, heads: int = 4, **kwargs: Any) -> RelationalConv:
    """The registered conv ``name`` mapping ``channels`` to ``channels``."""
    return CONVS.get(name)(channels, metadata, heads, **kwargs)


def _gat(channels: int, metadata, heads: int, **kwargs: Any) -> RelationalConv:
    check_int(heads, "conv='gat' 'heads'")
    if channels % heads:
        raise ValueError(f"conv='gat' splits {channels} channels over heads={heads}; pick a divisor")
    return RelationalGATConv(channels, channels // heads, metadata, heads=heads, **kwargs)


register_conv("gcn", lambda channels, metadata, heads, **kw: RelationalGCNConv(channels, channels, metadata, **kw))
register_conv("gat", _gat)
register_conv("hgt", lambda channels, metadata, heads, **kw: RelationalHGTConv(channels, channels, metadata,
                                                                              heads=heads, **kw))
register_conv("gated", lambda channels, metadata, heads, **kw: GatedRelationalConv(channels, channels, metadata, **kw))


class FusionBlock(torch.nn.Module):
    r"""A fusion layer in a transformer-style block: message passing, then a feed-forward network,
    each with dropout, a residual connection and normalisation.

    .. math::
        \mathbf{h} = \mathrm{Norm}(\mathbf{x} + \mathrm{Dropout}(\mathrm{Conv}(\mathbf{x})
        [+ \mathrm{Context}(\mathbf{x})])),
        \qquad \mathbf{x}^{\prime} = \mathrm{Norm}(\mathbf{h} + \mathrm{Dropout}(\mathrm{FFN}(\mathbf{h})))

    (``norm_first=True`` normalises the branch inputs instead, as pre-norm transformers do.) The
    optional :class:`~graphfuse.nn.ModalityContext` adds to the messages a gated summary of each
    node's own modality in its sample; its gate starts at 0, where the block is the plain one.

    Args:
        channels (int): features per node, in and out.
        metadata (tuple): ``(node_types, edge_types)``.
        conv (str, optional): a registered conv, see :func:`list_convs`. (default: :obj:`"gat"`)
        heads (int, optional): attention heads (for ``"gat"`` and ``"hgt"``). (default: :obj:`4`)
        ffn_ratio (float, optional): hidden size of the feed-forward network over ``channels``;
            ``0`` leaves it out. (default: :obj:`4`)
        dropout (float, optional): dropout after the conv and the feed-forward network.
            (default: :obj:`0.1`)
        norm (str, optional): ``"layer"`` or ``"none"``. (default: :obj:`"layer"`)
        activation (str, optional): ``"gelu"``, ``"relu"`` or ``"silu"``. (default: :obj:`"gelu"`)
        norm_first (bool, optional): pre-norm instead of post-norm. (default: :obj:`False`)
        conv_kwargs (dict, optional): more arguments of the conv.
        modality_context (bool, optional): add a :class:`~graphfuse.nn.ModalityContext` to the
            messages. (default: :obj:`False`)

    Shapes:
        - **input:** :math:`(|\mathcal{V}|, C)` with a :class:`FlatGraph`
        - **output:** :math:`(|\mathcal{V}|, C)`
    """

    def __init__(self, channels: int, metadata: Metadata | Schema, conv: str = "gat", heads: int = 4,
                 ffn_ratio: float = 4, dropout: float = 0.1, norm: str = "layer", activation: str = "gelu",
                 norm_first: bool = False, conv_kwargs: Mapping[str, Any] | None = None,
                 modality_context: bool = False) -> None:
        super().__init__()
        check_int(channels, "FusionBlock 'channels'")
        check_choice(norm, NORMS, "FusionBlock 'norm'")
        check_choice(activation, tuple(ACTIVATIONS), "FusionBlock 'activation'")
        check_probability(dropout, "FusionBlock 'dropout'")
        ffn_ratio = check_number(ffn_ratio, "FusionBlock 'ffn_ratio'")
        self.conv_name, self.norm_first = conv, norm_first
        self.conv = create_conv(conv, channels, metadata, heads, **dict(conv_kwargs or {}))
        self.dropout = torch.nn.Dropout(dropout)
        make_norm = (lambda: torch.nn.LayerNorm(channels)) if norm == "layer" else torch.nn.Identity
        self.norm1, self.norm2 = make_norm(), make_norm()
        self.context = ModalityContext(channels, self.conv.schema.num_node_types) if modality_context else None
        hidden = int(round(channels * ffn_ratio))
        self.ffn = torch.nn.Sequential(torch.nn.Linear(channels, hidden), ACTIVATIONS[activation](),
                                       torch.nn.Linear(hidden, channels)) if hidden else None

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def _messages(self, x: Tensor, graph: FlatGraph) -> Tensor:
        out = self.conv(x, graph)
        return out if self.context is None else out + self.context(x, graph)

    def forward(self, x: Tensor, graph: FlatGraph) -> Tensor:
        if self.norm_first:
            x = x + self.dropout(self._messages(self.norm1(x), graph))
            if self.ffn is not None:
                x = x + self.dropout(self.ffn(self.norm2(x)))
            return x
        x = self.norm1(x + self.dropout(self._messages(x, graph)))
        if self.ffn is not None:
            x = self.norm2(x + self.dropout(self.ffn(x)))
        return x


class FusionEncoder(torch.nn.Module):
    r"""``num_layers`` fusion blocks over a batch's flat typed graph, optionally with dynamic k-NN
    cross-modal edges recomputed from each block's input.

    The graph structure is built once per batch (:class:`FlatGraph`) and shared by all blocks.

    Args:
        channels (int): features per node.
        metadata (tuple): ``(node_types, edge_types)``; k-NN edges fill relations between
            different node types, so list them here even when the batch carries none.
        num_layers (int, optional): fusion blocks. (default: :obj:`2`)
        conv (str, optional): a registered conv, ``"gcn"``, ``"gat"``, ``"hgt"`` or ``"gated"``.
            (default: :obj:`"gat"`)
        knn (int, optional): replace cross-modal relations by each node's ``knn`` most similar
            nodes of the other type in the same sample. (default: :obj:`None`)
        knn_relations (Sequence, optional): the relations k-NN replaces (default: every relation
            between two different node types).
        knn_update (str, optional): when the k-NN edges are chosen: ``"block"``, from each
            block's input (the neighbours follow the features as the blocks refine them), or
            ``"forward"``, once from the encoder's input, the edges and their structure (softmax
            groups, sparse layouts) then shared by every block, which saves the top-k and the
            structure of all but one block. (default: :obj:`"block"`)
        **block_kwargs: :class:`FusionBlock` arguments (``heads``, ``ffn_ratio``, ``dropout``,
            ``norm``, ``activation``, ``norm_first``, ``conv_kwargs``).

    Example:
        >>> encoder = FusionEncoder(128, builder.metadata(), conv="gat", heads=4)
        >>> h_dict = encoder(NodeEncoders.from_builder(builder, 128)(batch), batch)
    """

    def __init__(self, channels: int, metadata: Metadata | Schema, num_layers: int = 2, conv: str = "gat",
                 knn: int | None = None, knn_relations=None, knn_update: str = "block", **block_kwargs: Any) -> None:
        super().__init__()
        check_int(num_layers, "FusionEncoder 'num_layers'")
        check_choice(knn_update, KNN_UPDATES, "FusionEncoder 'knn_update'")
        self.knn_update = knn_update
        self.schema = Schema.from_metadata(metadata)
        self.channels = channels
        self.blocks = torch.nn.ModuleList([FusionBlock(channels, self.schema, conv, **block_kwargs)
                                           for _ in range(num_layers)])
        self.knn = None if knn is None else DynamicKNNEdges(knn, self.schema, knn_relations)

    def reset_parameters(self) -> None:
        for block in self.blocks:
            block.reset_parameters()

    def graph(self, data, edge_index_dict=None, batch_dict=None,
              x_dict: Mapping[str, Tensor] | None = None) -> FlatGraph:
        """The batch's :class:`FlatGraph` (from a PyG batch, or from the dicts)."""
        if isinstance(data, FlatGraph):
            return data
        if edge_index_dict is None:
            if hasattr(data, "metadata"):
                return FlatGraph.from_batch(data, self.schema)
            raise TypeError(f"FusionEncoder needs a PyG batch, a FlatGraph, or x_dict with an edge_index_dict, got "
                            f"{type(data).__name__}")
        if x_dict is None:
            raise TypeError("FusionEncoder needs a PyG batch, a FlatGraph, or x_dict with an edge_index_dict")
        return FlatGraph.from_dicts(self.schema, {t: v.size(0) for t, v in x_dict.items()}, edge_index_dict or {},
                                    batch_dict)

    def forward(self, x: Tensor | Mapping[str, Tensor], graph, batch_dict: Mapping[str, Tensor] | None = None):
        """``encoder(h_dict, batch)`` / ``encoder(h_dict, edge_index_dict, batch_dict)`` return a
        dict per node type; ``encoder(x, flat_graph)`` returns flat features."""
        as_dict = isinstance(x, Mapping)
        if as_dict:
            edge_index_dict = graph if isinstance(graph, Mapping) else None
            graph = self.graph(graph if edge_index_dict is None else None, edge_index_dict, batch_dict, x)
            x = graph.flatten(x, self.__class__.__name__)
        elif not isinstance(graph, FlatGraph):
            graph = self.graph(graph)
        shared = self.knn(x, graph) if self.knn is not None and self.knn_update == "forward" else graph
        for block in self.blocks:
            block_graph = self.knn(x, graph) if self.knn is not None and self.knn_update == "block" else shared
            x = block(x, block_graph)
        return graph.unflatten(x) if as_dict else x

    def __repr__(self) -> str:
        conv = self.blocks[0].conv_name
        knn = "" if self.knn is None else f", knn={self.knn.k}"
        if self.knn is not None and self.knn_update != "block":
            knn += f", knn_update={self.knn_update!r}"
        return f"{self.__class__.__name__}({self.channels}, num_layers={len(self.blocks)}, conv={conv!r}{knn})"
