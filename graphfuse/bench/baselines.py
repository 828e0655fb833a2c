"""The throughput benchmark's comparison methods: PyG and DGL heterogeneous layers, a dense
transformer and an early-fusion MLP, each a fusion ``forward(h_dict, graph) -> [num_samples, hidden]``.

Graph methods run ``layers`` times ``h = h + relu(conv(h))`` per node type (a node type that
receives no message keeps ``h``) and end with :func:`mean_per_sample`. ``prepare(batch)`` runs
outside the timed step (like data loading): DGL graph conversion happens there.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch_geometric.nn import GATConv, GCNConv, HeteroConv, HGTConv, SAGEConv

from graphfuse.typing import import_dgl


def mean_per_sample(h_dict: Mapping[str, Tensor], batch_dict: Mapping[str, Tensor], num_samples: int) -> Tensor:
    """Mean over all nodes of each sample, all node types together: ``[num_samples, hidden]``
    (zeros for a sample without nodes)."""
    keys = [key for key in h_dict if h_dict[key] is not None and h_dict[key].size(0)]
    if not keys:
        raise ValueError("mean_per_sample received no nodes at all")
    x = torch.cat([h_dict[key] for key in keys])
    batch = torch.cat([batch_dict[key] for key in keys])
    total = x.new_zeros(num_samples, x.size(1)).index_add(0, batch, x)
    count = torch.bincount(batch, minlength=num_samples).clamp_min(1).unsqueeze(-1)
    return total / count.to(x.dtype)


class _ResidualLayers(torch.nn.Module):
    """``h = h + relu(layer(h))`` per node type, then the per-sample mean."""

    def __init__(self, layers: Sequence[torch.nn.Module]) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(layers)

    def step(self, layer: torch.nn.Module, h_dict: dict[str, Tensor], graph: Any) -> dict[str, Tensor]:
        return layer(h_dict, graph.edge_index_dict)

    def forward(self, h_dict: dict[str, Tensor], graph: Any) -> Tensor:
        for layer in self.layers:
            out = self.step(layer, h_dict, graph)
            h_dict = {key: h + torch.relu(out[key]) if out.get(key) is not None else h for key, h in h_dict.items()}
        return mean_per_sample(h_dict, graph.batch_dict, graph.num_graphs)


def _pyg_heteroconv(metadata, hidden: int, layers: int, conv: Callable[[tuple], torch.nn.Module]) -> torch.nn.Module:
    return _ResidualLayers([HeteroConv({edge_type: conv(edge_type) for edge_type in metadata[1]}, aggr="sum")
                            for _ in range(layers)])


def pyg_heteroconv_gcn(metadata, hidden: int, layers: int, heads: int) -> torch.nn.Module:
    """GCN within a modality, SAGE across (``GCNConv`` has no bipartite form)."""
    return _pyg_heteroconv(metadata, hidden, layers, lambda e: GCNConv(hidden, hidden) if e[0] == e[2]
                           else SAGEConv((hidden, hidden), hidden))


def pyg_heteroconv_gat(metadata, hidden: int, layers: int, heads: int) -> torch.nn.Module:
    return _pyg_heteroconv(metadata, hidden, layers, lambda e: GATConv(
        (hidden, hidden), hidden // heads, heads=heads, add_self_loops=e[0] == e[2]))


def pyg_hgt(metadata, hidden: int, layers: int, heads: int) -> torch.nn.Module:
    return _ResidualLayers([HGTConv(hidden, hidden, metadata, heads=heads) for _ in range(layers)])


@dataclass
class DGLGraph:
    """A DGL heterograph with the per-type sample ids the readout needs."""

    graph: Any
    batch_dict: dict[str, Tensor]
    num_graphs: int


def dgl_prepare(batch) -> DGLGraph:
    from graphfuse.graph import to_dgl

    return DGLGraph(to_dgl(batch), dict(batch.batch_dict), batch.num_graphs)


class _DGLLayers(_ResidualLayers):
    def step(self, layer, h_dict, graph: DGLGraph):
        inputs = {key: h for key, h in h_dict.items() if key in graph.graph.ntypes}
        out = layer(graph.graph, inputs)
        return {key: value.flatten(1) for key, value in out.items()}


def _dgl_hetero(metadata, make: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    dgl = import_dgl()
    return dgl.nn.HeteroGraphConv({edge_type: make() for edge_type in metadata[1]}, aggregate="sum")


def dgl_graphconv(metadata, hidden: int, layers: int, heads: int) -> torch.nn.Module:
    dgl = import_dgl()
    return _DGLLayers([_dgl_hetero(metadata, lambda: dgl.nn.GraphConv(hidden, hidden, norm="both",
                                                                        allow_zero_in_degree=True))
                       for _ in range(layers)])


def dgl_gat(metadata, hidden: int, layers: int, heads: int) -> torch.nn.Module:
    dgl = import_dgl()
    return _DGLLayers([_dgl_hetero(metadata, lambda: dgl.nn.GATConv(hidden, hidden // heads, heads,
                                                                      allow_zero_in_degree=True))
                       for _ in range(layers)])


class DenseTransformer(torch.nn.Module):
    """``TransformerEncoder`` over each sample's concatenated nodes plus a modality embedding,
    padded per batch with a key padding mask; masked mean at the end."""

    def __init__(self, metadata, hidden: int, layers: int, heads: int) -> None:
        super().__init__()
        self.node_types = list(metadata[0])
        self.modality = torch.nn.Embedding(len(self.node_types), hidden)
        layer = torch.nn.TransformerEncoderLayer(hidden, heads, 4 * hidden, dropout=0.0, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, h_dict: dict[str, Tensor], graph: Any) -> Tensor:
        keys = [key for key in self.node_types if key in h_dict]
        x = torch.cat([h_dict[key] + self.modality.weight[self.node_types.index(key)] for key in keys])
        batch = torch.cat([graph.batch_dict[key] for key in keys])
        order = torch.argsort(batch, stable=True)
        batch = batch[order]
        B = graph.num_graphs
        counts = torch.bincount(batch, minlength=B)
        length = max(int(counts.max()), 1)
        position = torch.arange(batch.numel(), device=x.device) - (torch.cumsum(counts, 0) - counts)[batch]
        dense = x.new_zeros(B, length, x.size(1))
        dense[batch, position] = x[order]
        valid = torch.arange(length, device=x.device) < counts.unsqueeze(-1)
        out = self.encoder(dense, src_key_padding_mask=~valid)
        return (out * valid.unsqueeze(-1)).sum(1) / counts.clamp_min(1).unsqueeze(-1).to(out.dtype)


class EarlyFusionMLP(torch.nn.Module):
    """Per-modality means (zeros where a sample lacks the modality), concatenated, through an MLP
    (``layers`` is not used: the MLP has one hidden layer of 4x hidden)."""

    def __init__(self, metadata, hidden: int, layers: int, heads: int) -> None:
        super().__init__()
        self.node_types = list(metadata[0])
        self.mlp = torch.nn.Sequential(torch.nn.Linear(len(self.node_types) * hidden, 4 * hidden), torch.nn.GELU(),
                                       torch.nn.Linear(4 * hidden, hidden))

    def forward(self, h_dict: dict[str, Tensor], graph: Any) -> Tensor:
        B = graph.num_graphs
        parts = []
        for key in self.node_types:
            h = h_dict.get(key)
            if h is None or h.size(0) == 0:
                parts.append(self.mlp[0].weight.new_zeros(B, self.mlp[0].in_features // len(self.node_types)))
                continue
            parts.append(mean_per_sample({key: h}, graph.batch_dict, B))
        return self.mlp(torch.cat(parts, 1))


@dataclass(frozen=True)
class Baseline:
    build: Callable[..., torch.nn.Module]
    prepare: Callable[[Any], Any] = staticmethod(lambda batch: batch)
    requires_dgl: bool = False


BASELINES: dict[str, Baseline] = {
    "pyg-heteroconv-gcn": Baseline(pyg_heteroconv_gcn),
    "pyg-heteroconv-gat": Baseline(pyg_heteroconv_gat),
    "pyg-hgt": Baseline(pyg_hgt),
    "dgl-graphconv": Baseline(dgl_graphconv, dgl_prepare, requires_dgl=True),
    "dgl-gat": Baseline(dgl_gat, dgl_prepare, requires_dgl=True),
    "dense-transformer": Baseline(DenseTransformer),
    "early-fusion-mlp": Baseline(EarlyFusionMLP),
}
