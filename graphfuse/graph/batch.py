"""Vectorised batching: many samples' node sets -> one PyG batch, without per-edge Python work.

The result equals ``Batch.from_data_list`` over the per-sample graphs (the same features,
edges, ``batch``, ``ptr`` and the slice / increment bookkeeping that ``to_data_list`` needs).
A batch is made of two parts:

* its skeleton, what follows from the samples' shapes alone: ``ptr`` and ``batch`` vectors,
  the positions of structures all samples share, each relation's local edges (one template
  when all samples share it) and node offsets, the bookkeeping. When every sample has the same
  shape in every modality, the skeleton is cached per shape and batch size, so a stream of
  fixed-shape batches builds it once;
* its content: each feature attribute concatenated once, and each relation's edges offset by
  one broadcast addition (a concatenation and one addition when shapes vary).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch_geometric.data import Batch, HeteroData

from graphfuse.modalities.base import NODE_ATTRIBUTES, NodeSet
from graphfuse.nn.flat import BatchLayout, attach_layout

if TYPE_CHECKING:
    from graphfuse.graph.builder import GraphBuilder, Relation

SKELETON_CACHE_SIZE = 32


def _cumsum(counts: Tensor) -> Tensor:
    out = counts.new_zeros(counts.numel() + 1)
    torch.cumsum(counts, dim=0, out=out[1:])
    return out


def _node_attribute(node_type: str, attribute: str, expected: Tensor | None,
                    present: Sequence[NodeSet]) -> Tensor | None:
    """One attribute of a node type across the batch."""
    values = [getattr(nodes, attribute) for nodes in present]
    if expected is None:
        if any(value is not None for value in values):
            raise ValueError(f"A node set of '{node_type}' carries '{attribute}', which this builder's "
                             f"'{node_type}' modality does not produce; featurize samples with the same builder")
        return None
    if not values:
        return expected
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


def _arange_ptr(num_graphs: int, count: int) -> Tensor:
    """``ptr`` of ``num_graphs`` samples with ``count`` items each: ``[0, count, 2 count, ...]``."""
    if count == 0:
        return torch.zeros(num_graphs + 1, dtype=torch.long)
    return torch.arange(0, (num_graphs + 1) * count, count)


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
        if sizes.count(first) == len(sizes):
            batch = graph_index.unsqueeze(1).expand(-1, first).reshape(-1)
            return cls(sizes, _arange_ptr(len(sizes), first), batch, True)
        counts = torch.tensor(sizes)
        return cls(sizes, _cumsum(counts), graph_index.repeat_interleave(counts), False)


@dataclass
class _RelationLayout:
    """One relation's edges in the batch: local edges plus each sample's node offsets."""

    local: Tensor | list[Tensor]  # one template every sample shares, or each sample's local edges
    offsets: Tensor  # [2, num_graphs]: first source and destination node of each sample
    counts: Tensor | None  # edges per sample, when they vary
    slices: Tensor

    @property
    def increments(self) -> Tensor:
        """``offsets`` as ``Batch.from_data_list`` records them: ``[num_graphs, 2, 1]``."""
        return self.offsets.t().unsqueeze(-1)

    def edge_index(self) -> Tensor:
        if isinstance(self.local, Tensor):
            return (self.local.unsqueeze(1) + self.offsets.unsqueeze(2)).reshape(2, -1)
        edge_index = torch.cat(self.local, dim=1)
        total = edge_index.size(1)
        for row in range(2):  # per row, as 1-D repeat_interleave is several times faster than along dim 1
            edge_index[row] += self.offsets[row].repeat_interleave(self.counts, output_size=total)
        return edge_index


def _local_edges(builder: GraphBuilder, relation: Relation, samples: Sequence[Mapping[str, NodeSet]],
                 layouts: Mapping[str, _Layout], shared_edges: Mapping[str, Tensor]) -> Tensor | list[Tensor]:
    """Each sample's local edges of ``relation``, or one tensor when every sample shares it."""
    src, _, dst = relation.edge_type
    strategy = relation.strategy
    if strategy is None and src in shared_edges:
        return shared_edges[src]
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


@dataclass
class _Skeleton:
    """What a batch's structure follows from: node layouts, shared positions, relation layouts."""

    layouts: dict[str, _Layout]
    positions: dict[str, Tensor]  # batched ``pos`` of node types whose samples share one structure
    relations: list[_RelationLayout]  # in the order of ``builder.relations``
    layout: BatchLayout | None = None  # the flat-graph facts of its batches, from the first one

    @classmethod
    def build(cls, builder: GraphBuilder, samples: Sequence[Mapping[str, NodeSet]],
              per_type: Mapping[str, list[NodeSet | None]], sizes: Mapping[str, list[int]],
              structures: Mapping[str, Hashable | None]) -> _Skeleton:
        num_graphs = len(samples)
        graph_index = torch.arange(num_graphs)
        layouts: dict[str, _Layout] = {}
        positions: dict[str, Tensor] = {}
        shared_edges: dict[str, Tensor] = {}  # intra-modal edges of types whose samples all share them
        for node_type, sets in per_type.items():
            layouts[node_type] = _Layout.of(sizes[node_type], graph_index)
            if structures[node_type] is not None:
                first = sets[0]
                shared_edges[node_type] = first.edge_index.clone()  # kept by a cached skeleton
                if first.pos is not None:
                    positions[node_type] = first.pos.expand(num_graphs, *first.pos.shape).reshape(
                        -1, *first.pos.shape[1:])
        for node_type, count in builder.virtual_nodes.items():
            layouts[node_type] = _Layout.of([count] * num_graphs, graph_index)

        starts = {node_type: layout.ptr[:-1] for node_type, layout in layouts.items()}
        relations, edge_counts = [], []
        for relation in builder.relations:
            src, _, dst = relation.edge_type
            local = _local_edges(builder, relation, samples, layouts, shared_edges)
            offsets = torch.stack([starts[src], starts[dst]])
            if isinstance(local, Tensor):
                relations.append(_RelationLayout(local, offsets, None, _arange_ptr(num_graphs, local.size(1))))
                edge_counts.append([local.size(1)] * num_graphs)
            else:
                counts = [edges.size(1) for edges in local]
                counts_tensor = torch.tensor(counts)
                relations.append(_RelationLayout(local, offsets, counts_tensor, _cumsum(counts_tensor)))
                edge_counts.append(counts)
        _check_edge_totals(builder, edge_counts)
        return cls(layouts, positions, relations)

    def fill(self, builder: GraphBuilder, per_type: Mapping[str, list[NodeSet | None]], cached: bool) -> Batch:
        """The batch: this skeleton with the samples' features; tensors a cached skeleton keeps are copied."""
        fresh = Tensor.clone if cached else _same
        num_graphs = len(next(iter(self.layouts.values())).sizes)
        no_increment = torch.zeros(num_graphs, dtype=torch.long)
        out = Batch(_base_cls=HeteroData)
        slice_dict: dict = {}
        inc_dict: dict = {}
        for node_type, layout in self.layouts.items():
            store = out[node_type]
            if node_type in builder.virtual_nodes:
                store.x = torch.arange(builder.virtual_nodes[node_type]).repeat(num_graphs)
            else:
                expected = builder.empty_node_sets[node_type]
                present = [nodes for nodes in per_type[node_type] if nodes is not None]
                for attribute in NODE_ATTRIBUTES:
                    if attribute == "pos" and node_type in self.positions:
                        value = fresh(self.positions[node_type])
                    else:
                        value = _node_attribute(node_type, attribute, getattr(expected, attribute), present)
                    if value is not None:
                        store[attribute] = value
            slice_dict[node_type] = {attribute: layout.ptr for attribute in store.keys()}
            inc_dict[node_type] = {attribute: no_increment for attribute in store.keys()}
            store.batch = fresh(layout.batch)
            store.ptr = fresh(layout.ptr)
        for relation, layout in zip(builder.relations, self.relations, strict=True):
            out[relation.edge_type].edge_index = layout.edge_index()
            slice_dict[relation.edge_type] = {"edge_index": layout.slices}
            inc_dict[relation.edge_type] = {"edge_index": layout.increments}
        out._num_graphs = num_graphs
        out._slice_dict = slice_dict
        out._inc_dict = inc_dict
        # What the model's flat graph needs of the values, read here on the CPU, not in every forward.
        if self.layout is None:
            self.layout = BatchLayout.from_batch(out)
        return attach_layout(out, self.layout)


def _same(tensor: Tensor) -> Tensor:
    return tensor


def _shared_structure(sets: Sequence[NodeSet | None]) -> Hashable | None:
    """The structure key of a node type when every sample has that type with one and the same key."""
    first = sets[0]
    if first is None or first.structure is None:
        return None
    if all(nodes is not None and nodes.structure == first.structure for nodes in sets):
        return first.structure
    return None


def _uniform_key(builder: GraphBuilder, sizes: Mapping[str, list[int]],
                 structures: Mapping[str, Hashable | None]) -> Hashable | None:
    """A key for the batch's skeleton when every sample has the same size and structure in every
    modality and every relation's edges follow from shapes; else ``None`` (nothing to reuse)."""
    if not all(relation.strategy is None or relation.strategy.shape_only for relation in builder.relations):
        return None
    shapes = []
    for node_type, counts in sizes.items():
        if counts.count(counts[0]) != len(counts) or (counts[0] and structures[node_type] is None):
            return None
        shapes.append((counts[0], structures[node_type]))
    return len(next(iter(sizes.values()))), builder.max_edges_per_sample, tuple(shapes)


def collate_node_sets(builder: GraphBuilder, samples: list[Mapping[str, NodeSet]]) -> Batch:
    """Batches the node sets of ``samples`` (each from :meth:`GraphBuilder.featurize`)."""
    per_type = {node_type: [nodes.get(node_type) for nodes in samples] for node_type in builder.modalities}
    sizes = {node_type: [0 if nodes is None else nodes.x.size(0) for nodes in sets]
             for node_type, sets in per_type.items()}
    structures = {node_type: _shared_structure(sets) for node_type, sets in per_type.items()}
    key = _uniform_key(builder, sizes, structures)
    skeletons: OrderedDict = builder._skeletons
    skeleton = skeletons.get(key) if key is not None else None
    if skeleton is not None:
        skeletons.move_to_end(key)
        return skeleton.fill(builder, per_type, cached=True)
    skeleton = _Skeleton.build(builder, samples, per_type, sizes, structures)
    if key is not None:
        skeletons[key] = skeleton
        if len(skeletons) > SKELETON_CACHE_SIZE:
            skeletons.popitem(last=False)
    return skeleton.fill(builder, per_type, cached=key is not None)


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
