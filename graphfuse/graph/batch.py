"""Vectorised batching: many samples' node sets -> one PyG batch, without per-edge Python work.

The result equals ``Batch.from_data_list`` over the per-sample graphs (the same features,
edges, ``batch``, ``ptr`` and the slice / increment bookkeeping that ``to_data_list`` needs),
but each attribute is one concatenation and each relation one offset addition; a relation
whose samples all share one cached template is offset by a single broadcast.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch_geometric.data import Batch, HeteroData

from graphfuse.modalities.base import NODE_ATTRIBUTES, NodeSet

if TYPE_CHECKING:
    from graphfuse.graph.builder import GraphBuilder, Relation


def _cumsum(counts: Tensor) -> Tensor:
    out = counts.new_zeros(counts.numel() + 1)
    torch.cumsum(counts, dim=0, out=out[1:])
    return out


def _node_attribute(node_type: str, attribute: str, expected: Tensor | None, present: Sequence[NodeSet],
                    shared: NodeSet | None) -> Tensor | None:
    """One attribute of a node type across the batch; ``pos`` of a ``shared`` structure is repeated."""
    values = [getattr(nodes, attribute) for nodes in present]
    if expected is None:
        if any(value is not None for value in values):
            raise ValueError(f"A node set of '{node_type}' carries '{attribute}', which this builder's "
                             f"'{node_type}' modality does not produce; featurize samples with the same builder")
        return None
    if not values:
        return expected
    if attribute == "pos" and shared is not None and shared.pos is not None:
        pos = shared.pos
        return pos.repeat(len(values), *([1] * (pos.dim() - 1)))
    try:
        value = torch.cat(values)
    except (RuntimeError, TypeError):
        value = None
    if value is None or value.dtype != expected.dtype:
        raise ValueError(_mismatch(node_type, attribute, expected, values))
    return value


def _mismatch(node_type: str, attribute: str, expected: Tensor, values: Sequence[Tensor | None]) -> str:
    """Describes the first value that cannot be batched with what the builder expects."""
    for value in values:
        if value is None:
            return (f"A node set of '{node_type}' lacks '{attribute}', which this builder's '{node_type}' "
                    f"modality produces; featurize samples with the same builder")
        if value.dtype != expected.dtype or value.shape[1:] != expected.shape[1:]:
            return (f"Cannot batch '{attribute}' of node type '{node_type}': one sample has dtype {value.dtype} and "
                    f"shape {tuple(value.shape)}, the builder expects dtype {expected.dtype} and trailing shape "
                    f"{tuple(expected.shape[1:])}; check the modality's settings (e.g. image channels, feature dim)")
    return f"Cannot batch '{attribute}' of node type '{node_type}'"


@dataclass
class _Layout:
    """Where each sample's nodes of one type lie in the batch."""

    sizes: list[int]
    ptr: Tensor
    batch: Tensor
    uniform: bool  # every sample has the same number of these nodes

    @classmethod
    def of(cls, sizes: list[int], graph_index: Tensor) -> _Layout:
        first = sizes[0]
        if all(size == first for size in sizes):
            ptr = torch.arange(len(sizes) + 1) * first
            batch = graph_index.unsqueeze(1).expand(-1, first).reshape(-1)
            return cls(sizes, ptr, batch, True)
        counts = torch.tensor(sizes)
        return cls(sizes, _cumsum(counts), graph_index.repeat_interleave(counts), False)


def _local_edges(builder: GraphBuilder, relation: Relation, samples: Sequence[Mapping[str, NodeSet]],
                 layouts: Mapping[str, _Layout], shared: Mapping[str, NodeSet]) -> Tensor | list[Tensor]:
    """Each sample's local edges of ``relation``, or one tensor when every sample shares it."""
    src, _, dst = relation.edge_type
    strategy = relation.strategy
    if strategy is None and src in shared:
        return shared[src].edge_index
    if strategy is None or not strategy.shape_only:
        return [builder.relation_edges(relation, nodes) for nodes in samples]
    if layouts[src].uniform and layouts[dst].uniform:
        return builder.relation_edges(relation, samples[0])
    pairs = list(zip(layouts[src].sizes, layouts[dst].sizes, strict=True))
    templates: dict[tuple[int, int], Tensor] = {}
    for index, pair in enumerate(pairs):
        if pair not in templates:
            templates[pair] = builder.relation_edges(relation, samples[index])
    return [templates[pair] for pair in pairs]


def collate_node_sets(builder: GraphBuilder, samples: list[Mapping[str, NodeSet]]) -> Batch:
    """Batches the node sets of ``samples`` (each from :meth:`GraphBuilder.featurize`)."""
    num_graphs = len(samples)
    out = Batch(_base_cls=HeteroData)
    slice_dict: dict = {}
    inc_dict: dict = {}
    no_increment = torch.zeros(num_graphs, dtype=torch.long)
    graph_index = torch.arange(num_graphs)
    layouts: dict[str, _Layout] = {}
    shared: dict[str, NodeSet] = {}  # node types whose samples all have one structure -> a node set with it

    for node_type in builder.node_types:
        store = out[node_type]
        if node_type in builder.virtual_nodes:
            count = builder.virtual_nodes[node_type]
            layout = _Layout.of([count] * num_graphs, graph_index)
            store.x = torch.arange(count).repeat(num_graphs)
        else:
            expected = builder.empty_node_sets[node_type]
            of_type = [nodes.get(node_type) for nodes in samples]
            present = [nodes for nodes in of_type if nodes is not None]
            layout = _Layout.of([0 if nodes is None else nodes.x.shape[0] for nodes in of_type], graph_index)
            if len(present) == num_graphs and present[0].structure is not None and all(
                    nodes.structure == present[0].structure for nodes in present):
                shared[node_type] = present[0]
            for attribute in NODE_ATTRIBUTES:
                value = _node_attribute(node_type, attribute, getattr(expected, attribute), present,
                                        shared.get(node_type))
                if value is not None:
                    store[attribute] = value
        layouts[node_type] = layout
        slice_dict[node_type] = {attribute: layout.ptr for attribute in store.keys()}
        inc_dict[node_type] = {attribute: no_increment for attribute in store.keys()}
        store.batch = layout.batch
        store.ptr = layout.ptr

    edge_counts = []
    for relation in builder.relations:
        src, _, dst = relation.edge_type
        local = _local_edges(builder, relation, samples, layouts, shared)
        offsets = torch.stack([layouts[src].ptr[:-1], layouts[dst].ptr[:-1]])  # [2, num_graphs]
        if isinstance(local, Tensor):
            counts_list = [local.shape[1]] * num_graphs
            slices = torch.arange(num_graphs + 1) * local.shape[1]
            edge_index = (local.unsqueeze(1) + offsets.unsqueeze(2)).reshape(2, -1)
        else:
            counts_list = [edges.shape[1] for edges in local]
            counts = torch.tensor(counts_list)
            slices = _cumsum(counts)
            edge_index = torch.cat(local, dim=1) + offsets.repeat_interleave(counts, dim=1)
        edge_counts.append(counts_list)
        out[relation.edge_type].edge_index = edge_index
        slice_dict[relation.edge_type] = {"edge_index": slices}
        inc_dict[relation.edge_type] = {"edge_index": offsets.t().unsqueeze(-1)}
    _check_edge_totals(builder, edge_counts)

    out._num_graphs = num_graphs
    out._slice_dict = slice_dict
    out._inc_dict = inc_dict
    return out


def _check_edge_totals(builder: GraphBuilder, edge_counts: list[list[int]]) -> None:
    """Applies ``max_edges_per_sample``, naming the relation that pushed a sample over it."""
    if builder.max_edges_per_sample is None or not edge_counts:
        return
    totals = [sum(per_sample) for per_sample in zip(*edge_counts, strict=True)]
    worst = max(range(len(totals)), key=totals.__getitem__)
    running = 0
    for relation, counts in zip(builder.relations, edge_counts, strict=True):
        running += counts[worst]
        builder.check_edge_count(relation, counts[worst], running)
