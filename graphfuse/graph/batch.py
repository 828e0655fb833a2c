"""Vectorised batching: many samples' node sets -> one PyG batch, without per-edge Python work.

The result equals ``Batch.from_data_list`` over the per-sample graphs (the same features,
edges, ``batch``, ``ptr`` and the slice / increment bookkeeping that ``to_data_list`` needs),
but each attribute is one concatenation and each relation one offset addition; a relation
whose samples all share one cached template is offset by a single broadcast.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch_geometric.data import Batch, HeteroData

from graphfuse.modalities.base import NODE_ATTRIBUTES, NodeSet

if TYPE_CHECKING:
    from graphfuse.graph.builder import GraphBuilder


def _cumsum(counts: Tensor) -> Tensor:
    out = counts.new_zeros(counts.numel() + 1)
    torch.cumsum(counts, dim=0, out=out[1:])
    return out


def _node_attribute(node_type: str, attribute: str, expected: Tensor | None,
                    present: Sequence[NodeSet]) -> Tensor | None:
    values = [getattr(nodes, attribute) for nodes in present]
    if expected is None:
        if any(value is not None for value in values):
            raise ValueError(f"A node set of '{node_type}' carries '{attribute}', which this builder's "
                             f"'{node_type}' modality does not produce; featurize samples with the same builder")
        return None
    if not values:
        return expected
    if any(value is None for value in values):
        raise ValueError(f"A node set of '{node_type}' lacks '{attribute}', which this builder's '{node_type}' "
                         f"modality produces; featurize samples with the same builder")
    mismatched = [i for i, value in enumerate(values)
                  if value.dtype != expected.dtype or value.shape[1:] != expected.shape[1:]]
    if mismatched:
        value = values[mismatched[0]]
        raise ValueError(
            f"Cannot batch '{attribute}' of node type '{node_type}': one sample has dtype {value.dtype} and "
            f"shape {tuple(value.shape)}, the builder expects dtype {expected.dtype} and trailing shape "
            f"{tuple(expected.shape[1:])}; check the modality's settings (e.g. image channels, feature dim)")
    return torch.cat(values)


def collate_node_sets(builder: GraphBuilder, samples: list[Mapping[str, NodeSet]]) -> Batch:
    """Batches the node sets of ``samples`` (each from :meth:`GraphBuilder.featurize`)."""
    num_graphs = len(samples)
    out = Batch(_base_cls=HeteroData)
    slice_dict: dict = {}
    inc_dict: dict = {}
    no_increment = torch.zeros(num_graphs, dtype=torch.long)
    ptrs: dict[str, Tensor] = {}
    graph_index = torch.arange(num_graphs)

    for node_type in builder.modalities:
        expected = builder.empty_node_sets[node_type]
        present = [nodes[node_type] for nodes in samples if node_type in nodes]
        counts = torch.tensor([nodes[node_type].num_nodes if node_type in nodes else 0 for nodes in samples])
        ptrs[node_type] = ptr = _cumsum(counts)
        store = out[node_type]
        for attribute in NODE_ATTRIBUTES:
            value = _node_attribute(node_type, attribute, getattr(expected, attribute), present)
            if value is not None:
                store[attribute] = value
        slice_dict[node_type] = {attribute: ptr for attribute in store.keys()}
        inc_dict[node_type] = {attribute: no_increment for attribute in store.keys()}
        store.batch = graph_index.repeat_interleave(counts)
        store.ptr = ptr

    for node_type, count in builder.virtual_nodes.items():
        ptrs[node_type] = ptr = torch.arange(num_graphs + 1) * count
        store = out[node_type]
        store.x = torch.arange(count).repeat(num_graphs)
        slice_dict[node_type] = {"x": ptr}
        inc_dict[node_type] = {"x": no_increment}
        store.batch = graph_index.repeat_interleave(count)
        store.ptr = ptr

    totals = torch.zeros(num_graphs, dtype=torch.long)
    for relation in builder.relations:
        src, _, dst = relation.edge_type
        local = [builder.relation_edges(relation, nodes) for nodes in samples]
        counts = torch.tensor([edges.size(1) for edges in local])
        offsets = torch.stack([ptrs[src][:-1], ptrs[dst][:-1]])  # [2, num_graphs]
        first = local[0]
        if all(edges is first for edges in local):
            edge_index = (first.unsqueeze(1) + offsets.unsqueeze(2)).reshape(2, -1)
        else:
            edge_index = torch.cat(local, dim=1) + offsets.repeat_interleave(counts, dim=1)
        if builder.max_edges_per_sample is not None:
            totals += counts
            worst = int(totals.argmax())
            builder.check_edge_count(relation, int(counts[worst]), int(totals[worst]))
        out[relation.edge_type].edge_index = edge_index
        slice_dict[relation.edge_type] = {"edge_index": _cumsum(counts)}
        inc_dict[relation.edge_type] = {"edge_index": offsets.t().unsqueeze(-1)}

    out._num_graphs = num_graphs
    out._slice_dict = slice_dict
    out._inc_dict = inc_dict
    return out
