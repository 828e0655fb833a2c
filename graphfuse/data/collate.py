"""Collation: many samples' node sets -> one PyG batch, without per-edge Python work.

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

This is the one module that writes PyG's private ``Batch`` bookkeeping (``_slice_dict``,
``_inc_dict``, ``_num_graphs``, which ``to_data_list`` and ``get_example`` read). It does so only
after checking, once per process on a tiny batch, that the installed torch-geometric keeps them as
``Batch.from_data_list`` does; where it does not, collation falls back to the public
``Batch.from_data_list`` over per-sample graphs (same result, slower).
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor
from torch_geometric.data import Batch, HeteroData

from graphfuse.data.layout import BatchLayout, attach_layout
from graphfuse.data.nodes import NODE_ATTRIBUTES, NodeSet
from graphfuse.data.schema import Relation

log = logging.getLogger(__name__)
SKELETON_CACHE_SIZE = 32


class GraphLayout(Protocol):
    """What collation reads of a graph builder (:class:`graphfuse.data.GraphBuilder` is one)."""

    modalities: Mapping[str, Any]
    virtual_nodes: Mapping[str, int]
    empty_node_sets: Mapping[str, NodeSet]
    relations: Sequence[Relation]
    max_edges_per_sample: int | None

    def relation_edges(self, relation: Relation, nodes: Mapping[str, NodeSet]) -> Tensor: ...

    def check_edge_count(self, relation: Relation, count: int, total: int) -> None: ...


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


def _local_edges(builder: GraphLayout, relation: Relation, samples: Sequence[Mapping[str, NodeSet]],
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
    def build(cls, builder: GraphLayout, samples: Sequence[Mapping[str, NodeSet]],
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

    def fill(self, builder: GraphLayout, per_type: Mapping[str, list[NodeSet | None]], cached: bool) -> Batch:
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
        _set_bookkeeping(out, num_graphs, slice_dict, inc_dict)
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


def _uniform_key(builder: GraphLayout, sizes: Mapping[str, list[int]],
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


class Collater:
    """Batches featurised samples of one builder: ``collater(node_sets)`` equals
    ``Batch.from_data_list([collater.sample_graph(nodes) for nodes in node_sets])``.

    Owns the cache of batch skeletons (one per shape and batch size, least recently used first
    out); thread-safe, so ``DataLoader`` threads may share it.

    Args:
        builder (GraphLayout): the builder whose graphs it batches.
        cache_size (int, optional): skeletons kept. (default: :obj:`32`)
    """

    def __init__(self, builder: GraphLayout, cache_size: int = SKELETON_CACHE_SIZE) -> None:
        self.builder = builder
        self.cache_size = cache_size
        self._skeletons: OrderedDict[Hashable, _Skeleton] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, samples: Sequence[Mapping[str, NodeSet]]) -> Batch:
        """Batches ``samples`` (each a mapping node type -> :class:`NodeSet`, as the builder's
        ``featurize`` returns)."""
        if not bookkeeping_supported():
            return attach_layout(Batch.from_data_list([self.sample_graph(nodes) for nodes in samples]))
        builder = self.builder
        per_type = {node_type: [nodes.get(node_type) for nodes in samples] for node_type in builder.modalities}
        sizes = {node_type: [0 if nodes is None else nodes.x.size(0) for nodes in sets]
                 for node_type, sets in per_type.items()}
        structures = {node_type: _shared_structure(sets) for node_type, sets in per_type.items()}
        key = _uniform_key(builder, sizes, structures)
        skeleton = self._cached(key)
        if skeleton is None:
            skeleton = _Skeleton.build(builder, samples, per_type, sizes, structures)
            self._keep(key, skeleton)
        return skeleton.fill(builder, per_type, cached=key is not None)

    def sample_graph(self, nodes: Mapping[str, NodeSet]) -> HeteroData:
        """One sample's node sets -> its :class:`~torch_geometric.data.HeteroData` (every node type
        and relation of the layout, empty where the sample lacks a modality)."""
        builder = self.builder
        data = HeteroData()
        for node_type in builder.modalities:
            for attribute, value in nodes.get(node_type, builder.empty_node_sets[node_type]).attributes().items():
                data[node_type][attribute] = value
        for node_type, count in builder.virtual_nodes.items():
            data[node_type].x = torch.arange(count)
        total = 0
        for relation in builder.relations:
            edge_index = builder.relation_edges(relation, nodes)
            total += edge_index.size(1)
            builder.check_edge_count(relation, edge_index.size(1), total)
            shared = relation.strategy is not None and relation.strategy.shape_only
            data[relation.edge_type].edge_index = edge_index.clone() if shared else edge_index
        return data

    def _cached(self, key: Hashable | None) -> _Skeleton | None:
        if key is None:
            return None
        with self._lock:
            skeleton = self._skeletons.get(key)
            if skeleton is not None:
                self._skeletons.move_to_end(key)
            return skeleton

    def _keep(self, key: Hashable | None, skeleton: _Skeleton) -> None:
        if key is None:
            return
        with self._lock:
            self._skeletons[key] = skeleton
            while len(self._skeletons) > self.cache_size:
                self._skeletons.popitem(last=False)

    def clear(self) -> None:
        """Forgets every cached skeleton."""
        with self._lock:
            self._skeletons.clear()

    def __len__(self) -> int:
        """The number of cached skeletons."""
        return len(self._skeletons)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_skeletons"] = OrderedDict()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(cached={len(self)}, cache_size={self.cache_size})"


def _check_edge_totals(builder: GraphLayout, edge_counts: list[list[int]]) -> None:
    """Applies ``max_edges_per_sample``, naming the relation that pushed a sample over it."""
    if builder.max_edges_per_sample is None or not edge_counts:
        return
    totals = [sum(per_sample) for per_sample in zip(*edge_counts, strict=True)]
    worst = max(range(len(totals)), key=totals.__getitem__)
    running = 0
    for relation, counts in zip(builder.relations, edge_counts, strict=True):
        running += counts[worst]
        builder.check_edge_count(relation, counts[worst], running)


# PyG's private batch bookkeeping ---------------------------------------------------------------
_bookkeeping_ok: bool | None = None


def _set_bookkeeping(batch: Batch, num_graphs: int, slice_dict: dict, inc_dict: dict) -> None:
    """Writes what ``Batch.from_data_list`` records for ``to_data_list`` / ``get_example``."""
    batch._num_graphs = num_graphs
    batch._slice_dict = slice_dict
    batch._inc_dict = inc_dict


def bookkeeping_supported() -> bool:
    """Whether the installed torch-geometric keeps a batch's slices and increments as collation
    writes them: checked once per process on a tiny two-sample batch against ``Batch.from_data_list``."""
    global _bookkeeping_ok
    if _bookkeeping_ok is None:
        _bookkeeping_ok = _check_bookkeeping()
        if not _bookkeeping_ok:
            log.warning("this torch-geometric keeps Batch bookkeeping differently from what graphfuse expects; "
                        "collation falls back to the public Batch.from_data_list (same result, slower)")
    return _bookkeeping_ok


def _check_bookkeeping() -> bool:
    graphs = []
    for num_nodes in (2, 3):
        graph = HeteroData()
        graph["a"].x = torch.arange(num_nodes, dtype=torch.float).unsqueeze(1)
        graph["a", "to", "a"].edge_index = torch.tensor([[0, num_nodes - 1], [num_nodes - 1, 0]])
        graphs.append(graph)
    edge_type = ("a", "to", "a")
    # What collation writes for these two graphs (see _Skeleton.fill).
    slice_dict = {"a": {"x": torch.tensor([0, 2, 5])}, edge_type: {"edge_index": torch.tensor([0, 2, 4])}}
    inc_dict = {"a": {"x": torch.zeros(2, dtype=torch.long)},
                edge_type: {"edge_index": torch.tensor([0, 2]).view(2, 1, 1).expand(2, 2, 1)}}
    try:
        reference = Batch.from_data_list(graphs)
        ours = Batch(_base_cls=HeteroData)
        for key in ("x", "batch", "ptr"):
            ours["a"][key] = reference["a"][key]
        ours[edge_type].edge_index = reference[edge_type].edge_index
        _set_bookkeeping(ours, 2, slice_dict, inc_dict)
        recorded = (reference.num_graphs == 2 and _same_entries(reference._slice_dict, slice_dict)
                    and _same_entries(reference._inc_dict, inc_dict))
        returned = [(back["a"].x, back[edge_type].edge_index) for back in ours.to_data_list()]
        return recorded and ours.num_graphs == 2 and all(
            torch.equal(x, graph["a"].x) and torch.equal(edge_index, graph[edge_type].edge_index)
            for (x, edge_index), graph in zip(returned, graphs, strict=True))
    except (AttributeError, KeyError, RuntimeError, TypeError, ValueError):
        return False


def _same_entries(actual: Mapping, expected: Mapping) -> bool:
    return all(torch.equal(actual[key][attribute].reshape(value.shape), value)
               for key, values in expected.items() for attribute, value in values.items())
