r"""The comparison methods of the throughput benchmark (:mod:`graphfuse.bench.throughput`).

Each method is the fusion part of ``per-type encoders -> fusion -> linear head -> cross-entropy``:
a module called as ``fusion(h_dict, graph)`` that maps the encoded nodes
(``h_dict[node_type]: [num_nodes_of_type, hidden]``) to one vector per sample
(``[num_samples, hidden]``). ``graph`` is what the method's ``prepare(batch)`` returned; it runs
outside the timed step, like data loading (DGL graph conversion happens there).

* ``pyg-heteroconv-gcn``, ``pyg-heteroconv-gat``, ``pyg-hgt``, ``dgl-graphconv``, ``dgl-gat``:
  ``layers`` heterogeneous message-passing layers, each applied as

  .. math::
      \mathbf{h}_t \leftarrow \mathbf{h}_t + \mathrm{ReLU}(\mathrm{conv}(\mathbf{h})_t)

  per node type :math:`t` (a node type that receives no message keeps :math:`\mathbf{h}_t`),
  then :func:`mean_per_sample`.
* ``dense-transformer``: :class:`graphfuse.baselines.TransformerFusion` over each sample's nodes,
  padded, with the original Transformer's post-norm ReLU layers.
* ``early-fusion-mlp``: per-modality means (:class:`graphfuse.nn.TypePooling`) fused by
  :class:`graphfuse.baselines.EarlyFusion`.

Dropout is 0 everywhere, so that the methods are timed doing the same kind of work.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.nn import GATConv, GCNConv, HeteroConv, HGTConv, SAGEConv
from torch_geometric.utils import scatter

from graphfuse.baselines import EarlyFusion, TransformerFusion
from graphfuse.data import to_dgl
from graphfuse.nn import TypePooling
from graphfuse.nn.flat import Metadata
from graphfuse.nn.readout import check_node_dicts
from graphfuse.typing import EdgeType, NodeType, import_dgl


def mean_per_sample(h_dict: Mapping[NodeType, Tensor], batch_dict: Mapping[NodeType, Tensor],
                    num_samples: int) -> Tensor:
    r"""The readout every method ends with: the mean over all nodes of each sample, all node types
    together.

    Args:
        h_dict (Mapping[str, torch.Tensor]): node features ``[num_nodes_of_type, hidden]`` per node
            type (a type may have no nodes).
        batch_dict (Mapping[str, torch.Tensor]): the sample of each node, per node type (at least
            the types of :obj:`h_dict`).
        num_samples (int): the number of samples in the batch.

    Returns:
        torch.Tensor: ``[num_samples, hidden]``; zeros for a sample without nodes.
    """
    if not h_dict:
        raise ValueError("'mean_per_sample' received an empty 'h_dict'; pass at least one node type "
                         "(it may have 0 nodes)")
    check_node_dicts(h_dict, batch_dict, None, "'mean_per_sample'")
    x = torch.cat(list(h_dict.values()))
    batch = torch.cat([batch_dict[node_type] for node_type in h_dict])
    return scatter(x, batch, dim=0, dim_size=num_samples, reduce="mean")


@dataclass(frozen=True)
class PreparedBatch:
    r"""What a method's ``prepare(batch)`` returns: the structure its layers read and what the readout
    needs.

    Args:
        edges (Any): the batch's ``edge_index_dict`` (PyG methods), or a DGL heterograph (DGL methods).
        batch_dict (dict[str, torch.Tensor]): the sample of each node, per node type.
        num_samples (int): the number of samples in the batch.
    """

    edges: Any
    batch_dict: dict[NodeType, Tensor]
    num_samples: int


def prepare_pyg(batch: Batch) -> PreparedBatch:
    """The batch's edges (``edge_index_dict``) and sample indices, for PyG layers and the dense methods."""
    return PreparedBatch(batch.edge_index_dict, batch.batch_dict, batch.num_graphs)


def prepare_dgl(batch: Batch) -> PreparedBatch:
    """The batch as a DGL heterograph (:func:`graphfuse.data.to_dgl`, which keeps PyG's node order
    per type, so ``batch_dict`` still indexes its nodes) and the sample indices."""
    return PreparedBatch(to_dgl(batch), batch.batch_dict, batch.num_graphs)


class ResidualLayers(torch.nn.Module):
    r"""Heterogeneous PyG layers applied as :math:`\mathbf{h}_t \leftarrow \mathbf{h}_t +
    \mathrm{ReLU}(\mathrm{conv}(\mathbf{h})_t)` per node type :math:`t`, then :func:`mean_per_sample`.

    A node type the layer returns nothing (or ``None``) for keeps its features: ``HeteroConv`` only
    returns node types that some edge type points to, and ``HGTConv`` returns ``None`` for a node
    type without incoming edges.

    Args:
        convs (list[torch.nn.Module]): the layers, each called as ``conv(h_dict, graph.edges)`` and
            returning a dict of ``[num_nodes_of_type, hidden]`` tensors.

    Shapes:
        - **input:** node features :math:`\{t: (|\mathcal{V}_t|, F)\}`, a :class:`PreparedBatch`
        - **output:** :math:`(B, F)`
    """

    def __init__(self, convs: list[torch.nn.Module]) -> None:
        super().__init__()
        self.convs = torch.nn.ModuleList(convs)

    def message(self, conv: torch.nn.Module, h_dict: dict[NodeType, Tensor],
                graph: PreparedBatch) -> Mapping[NodeType, Tensor | None]:
        return conv(h_dict, graph.edges)

    def forward(self, h_dict: dict[NodeType, Tensor], graph: PreparedBatch) -> Tensor:
        for conv in self.convs:
            out = self.message(conv, h_dict, graph)
            h_dict = {node_type: h if out.get(node_type) is None else h + torch.relu(out[node_type])
                      for node_type, h in h_dict.items()}
        return mean_per_sample(h_dict, graph.batch_dict, graph.num_samples)


class DGLResidualLayers(ResidualLayers):
    r""":class:`ResidualLayers` for ``dgl.nn.HeteroGraphConv`` layers, called as
    ``conv(graph.edges, h_dict)`` on the DGL heterograph of :func:`prepare_dgl`; multi-head outputs
    ``[num_nodes, heads, channels]`` are concatenated over heads. ``HeteroGraphConv`` skips relations
    without edges and returns no features for a node type that no edge points to (a modality that
    every sample of the batch lacks)."""

    def message(self, conv: torch.nn.Module, h_dict: dict[NodeType, Tensor],
                graph: PreparedBatch) -> Mapping[NodeType, Tensor]:
        return {node_type: out.flatten(1) for node_type, out in conv(graph.edges, h_dict).items()}


def _check_heads(method: str, hidden: int, heads: int) -> None:
    if hidden % heads:
        raise ValueError(f"'{method}' splits hidden={hidden} channels over heads={heads}; pick a number of heads "
                         f"that divides hidden")


def _heteroconv(metadata: Metadata, layers: int, conv: Callable[[EdgeType], torch.nn.Module]) -> ResidualLayers:
    return ResidualLayers([HeteroConv({edge_type: conv(edge_type) for edge_type in metadata[1]}, aggr="sum")
                           for _ in range(layers)])


def _pyg_heteroconv_gcn(metadata: Metadata, hidden: int, layers: int, heads: int) -> ResidualLayers:
    """``HeteroConv`` of ``GCNConv`` within a node type and ``SAGEConv`` across types (``GCNConv`` has
    no bipartite form); ``heads`` is not used."""
    return _heteroconv(metadata, layers, lambda edge_type: GCNConv(hidden, hidden) if edge_type[0] == edge_type[2]
                       else SAGEConv((hidden, hidden), hidden))


def _pyg_heteroconv_gat(metadata: Metadata, hidden: int, layers: int, heads: int) -> ResidualLayers:
    """``HeteroConv`` of ``GATConv`` with ``heads`` concatenated heads of ``hidden // heads`` channels;
    self-loops within a node type only."""
    _check_heads("pyg-heteroconv-gat", hidden, heads)

    def conv(edge_type: EdgeType) -> GATConv:
        within = edge_type[0] == edge_type[2]
        return GATConv(hidden if within else (hidden, hidden), hidden // heads, heads=heads, add_self_loops=within)

    return _heteroconv(metadata, layers, conv)


def _pyg_hgt(metadata: Metadata, hidden: int, layers: int, heads: int) -> ResidualLayers:
    """``HGTConv(hidden, hidden, metadata, heads)`` layers."""
    _check_heads("pyg-hgt", hidden, heads)
    return ResidualLayers([HGTConv(hidden, hidden, metadata, heads=heads) for _ in range(layers)])


def _dgl_hetero(metadata: Metadata, layers: int, conv: Callable[[], torch.nn.Module]) -> DGLResidualLayers:
    dgl = import_dgl()
    return DGLResidualLayers([dgl.nn.HeteroGraphConv({edge_type: conv() for edge_type in metadata[1]},
                                                     aggregate="sum") for _ in range(layers)])


def _dgl_graphconv(metadata: Metadata, hidden: int, layers: int, heads: int) -> DGLResidualLayers:
    """``HeteroGraphConv`` of ``GraphConv(norm="both")`` per relation; ``heads`` is not used."""
    dgl = import_dgl()
    return _dgl_hetero(metadata, layers, lambda: dgl.nn.GraphConv(hidden, hidden, norm="both",
                                                                  allow_zero_in_degree=True))


def _dgl_gat(metadata: Metadata, hidden: int, layers: int, heads: int) -> DGLResidualLayers:
    """``HeteroGraphConv`` of ``GATConv`` per relation, ``heads`` heads of ``hidden // heads`` channels."""
    _check_heads("dgl-gat", hidden, heads)
    dgl = import_dgl()
    return _dgl_hetero(metadata, layers, lambda: dgl.nn.GATConv(hidden, hidden // heads, heads,
                                                                allow_zero_in_degree=True))


def _check_node_types(module: DenseTransformerFusion | EarlyFusionMLP, h_dict: Mapping[NodeType, Tensor]) -> None:
    if not h_dict:
        raise ValueError(f"'{module.__class__.__name__}' received an empty 'h_dict'; pass the features of at "
                         f"least one node type")
    unknown = [node_type for node_type in h_dict if node_type not in module.node_types]
    if unknown:
        raise ValueError(f"'{module.__class__.__name__}' received node types {unknown} that are not in its "
                         f"metadata {module.node_types}; build it with the batch's metadata")


class DenseTransformerFusion(torch.nn.Module):
    r""":class:`graphfuse.baselines.TransformerFusion` as in the original Transformer: post-norm
    ReLU layers with a feed-forward of ``4 * hidden`` and no dropout, over each sample's nodes of
    all types (each with a learned embedding of its node type, padded to the longest sample of the
    batch, padding masked out of attention and of the mean).

    Args:
        metadata (tuple[list[str], list[tuple[str, str, str]]]): node and edge types.
        hidden (int): feature size (``d_model``).
        layers (int): number of transformer layers.
        heads (int): attention heads; must divide :obj:`hidden`.

    Shapes:
        - **input:** node features :math:`\{t: (|\mathcal{V}_t|, F)\}`, a :class:`PreparedBatch`
        - **output:** :math:`(B, F)`
    """

    def __init__(self, metadata: Metadata, hidden: int, layers: int, heads: int) -> None:
        super().__init__()
        _check_heads("dense-transformer", hidden, heads)
        self.node_types = list(metadata[0])
        self.fusion = TransformerFusion(hidden, self.node_types, layers, heads, ffn_ratio=4.0, dropout=0.0,
                                        norm_first=False, activation="relu")

    def forward(self, h_dict: dict[NodeType, Tensor], graph: PreparedBatch) -> Tensor:
        _check_node_types(self, h_dict)
        return self.fusion(h_dict, graph.batch_dict, graph.num_samples)


class EarlyFusionMLP(torch.nn.Module):
    r"""Early fusion: the mean of each node type per sample (:class:`graphfuse.nn.TypePooling`),
    concatenated in metadata order through the MLP of :class:`graphfuse.baselines.EarlyFusion`
    (``Linear(T * hidden, 4 * hidden) -> GELU -> Linear(4 * hidden, hidden)``, no dropout), which
    holds a learned vector in the slot of a node type that a sample lacks.

    Args:
        metadata (tuple[list[str], list[tuple[str, str, str]]]): node and edge types (:math:`T` node
            types).
        hidden (int): feature size.
        layers (int): not used: the MLP always has one hidden layer.
        heads (int): not used.

    Shapes:
        - **input:** node features :math:`\{t: (|\mathcal{V}_t|, F)\}`, a :class:`PreparedBatch`
        - **output:** :math:`(B, F)`
    """

    def __init__(self, metadata: Metadata, hidden: int, layers: int, heads: int) -> None:
        super().__init__()
        self.node_types = list(metadata[0])
        self.pool = TypePooling(hidden, self.node_types, reduce="mean")
        self.fusion = EarlyFusion(hidden, len(self.node_types), out_channels=hidden, hidden_channels=4 * hidden,
                                  dropout=0.0)

    def forward(self, h_dict: dict[NodeType, Tensor], graph: PreparedBatch) -> Tensor:
        _check_node_types(self, h_dict)
        return self.fusion(*self.pool(h_dict, graph.batch_dict, graph.num_samples))


@dataclass(frozen=True)
class Comparison:
    r"""A comparison method of the throughput benchmark.

    Args:
        build (Callable): ``build(metadata, hidden, layers, heads) -> torch.nn.Module``, the fusion
            module, called as ``fusion(h_dict, graph) -> [num_samples, hidden]``.
        prepare (Callable): ``prepare(batch) -> graph`` for a collated batch
            (:meth:`graphfuse.GraphBuilder.collate`); runs outside the timed step.
        requires_dgl (bool): the method needs DGL (the ``dgl`` extra).
    """

    build: Callable[[Metadata, int, int, int], torch.nn.Module]
    prepare: Callable[[Batch], PreparedBatch]
    requires_dgl: bool = False


COMPARISONS: dict[str, Comparison] = {
    "pyg-heteroconv-gcn": Comparison(_pyg_heteroconv_gcn, prepare_pyg),
    "pyg-heteroconv-gat": Comparison(_pyg_heteroconv_gat, prepare_pyg),
    "pyg-hgt": Comparison(_pyg_hgt, prepare_pyg),
    "dgl-graphconv": Comparison(_dgl_graphconv, prepare_dgl, requires_dgl=True),
    "dgl-gat": Comparison(_dgl_gat, prepare_dgl, requires_dgl=True),
    "dense-transformer": Comparison(DenseTransformerFusion, prepare_pyg),
    "early-fusion-mlp": Comparison(EarlyFusionMLP, prepare_pyg),
}
"""The comparison methods by name (the names ``--methods`` of the throughput benchmark takes)."""
