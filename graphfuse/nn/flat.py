"""The flat typed graph the fusion layers run on: every node type and relation of a batch in one index space.

A batch's nodes are laid out type after type (``x = cat(x_dict.values())``) and its edges carry a
relation index, so a layer does one gather / scatter over all edges and picks each relation's
parameters by index instead of looping over relation types. The structure (degrees, softmax groups,
which relations are complete bipartite) depends on the batch alone: it is built once per batch and
shared by every layer.

Two row spaces index per-relation tensors without a loop over relations:

* *source rows*: one row per (source node, relation leaving its type), ``[sum_t n_t R^{out}_t]``;
  a layer projects each node type once into all its outgoing relations and these rows hold it.
* *group rows*: one row per (destination node, relation entering its type), ``[sum_t n_t R^{in}_t]``,
  the softmax / aggregation groups of per-relation attention and per-relation degrees.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from graphfuse.data.layout import BatchLayout, batch_layout
from graphfuse.debug import is_debug_enabled
from graphfuse.typing import EdgeType, NodeType

Metadata = tuple[Sequence[NodeType], Sequence[EdgeType]]


@dataclass(frozen=True)
class Schema:
    """Node and edge types of a layer, with each relation's place among its type's relations.

    Args:
        node_types (Sequence[str]): node types, in the order of the flat layout.
        edge_types (Sequence[tuple[str, str, str]]): relations ``(src, name, dst)``.
    """

    node_types: tuple[NodeType, ...]
    edge_types: tuple[EdgeType, ...]
    src_type: tuple[int, ...] = field(init=False)
    dst_type: tuple[int, ...] = field(init=False)
    out_relations: tuple[tuple[int, ...], ...] = field(init=False)
    in_relations: tuple[tuple[int, ...], ...] = field(init=False)
    src_slot: tuple[int, ...] = field(init=False)
    dst_slot: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not self.node_types:
            raise ValueError("A graph schema needs at least one node type")
        if len(set(self.node_types)) != len(self.node_types) or len(set(self.edge_types)) != len(self.edge_types):
            raise ValueError(f"Node and edge types must be unique, got {self.node_types} and {self.edge_types}")
        index = {node_type: i for i, node_type in enumerate(self.node_types)}
        for edge_type in self.edge_types:
            if not (isinstance(edge_type, tuple) and len(edge_type) == 3):
                raise ValueError(f"Edge types are (src, relation, dst) tuples, got {edge_type!r}")
            unknown = [t for t in (edge_type[0], edge_type[2]) if t not in index]
            if unknown:
                raise ValueError(f"Edge type {edge_type} names node type {unknown[0]!r}, which is not among the "
                                 f"node types {self.node_types}")
        src = tuple(index[e[0]] for e in self.edge_types)
        dst = tuple(index[e[2]] for e in self.edge_types)
        out_relations = tuple(tuple(r for r, s in enumerate(src) if s == t) for t in range(len(self.node_types)))
        in_relations = tuple(tuple(r for r, d in enumerate(dst) if d == t) for t in range(len(self.node_types)))
        set_ = object.__setattr__
        set_(self, "src_type", src)
        set_(self, "dst_type", dst)
        set_(self, "out_relations", out_relations)
        set_(self, "in_relations", in_relations)
        set_(self, "src_slot", tuple(out_relations[s].index(r) for r, s in enumerate(src)))
        set_(self, "dst_slot", tuple(in_relations[d].index(r) for r, d in enumerate(dst)))

    @classmethod
    def from_metadata(cls, metadata: Metadata | Schema) -> Schema:
        """From PyG's ``(node_types, edge_types)`` (``HeteroData.metadata()``)."""
        if isinstance(metadata, Schema):
            return metadata
        if not _is_metadata(metadata):
            raise TypeError(f"metadata must be (node_types, edge_types) as HeteroData.metadata() or "
                            f"builder.metadata() gives: a list of node type names and a list of (source, relation, "
                            f"destination) triples; got {metadata!r:.200}")
        return cls(tuple(metadata[0]), tuple(tuple(e) for e in metadata[1]))

    @property
    def num_node_types(self) -> int:
        return len(self.node_types)

    @property
    def num_relations(self) -> int:
        return len(self.edge_types)

    def metadata(self) -> tuple[list[NodeType], list[EdgeType]]:
        return list(self.node_types), list(self.edge_types)


def _is_metadata(metadata: object) -> bool:
    """Whether ``metadata`` is ``(node type names, (source, relation, destination) triples)``."""
    def names(items: object, length: int | None = None) -> bool:
        return (isinstance(items, (tuple, list)) and (length is None or len(items) == length)
                and all(isinstance(item, str) for item in items))

    return (isinstance(metadata, (tuple, list)) and len(metadata) == 2 and names(metadata[0])
            and isinstance(metadata[1], (tuple, list))
            and all(names(edge_type, 3) for edge_type in metadata[1]))


@dataclass
class SparseEdges:
    """The edges a layer gathers and scatters one by one, all relations together.

    ``src``/``dst`` are flat node indices, ``relation`` the relation index, ``source_row`` the source
    row and ``group_row`` the group row of each edge (see the module docstring); ``position``
    is where the edge sits in its relation's input ``edge_index`` (``-1`` for an added self loop).
    """

    src: Tensor
    dst: Tensor
    relation: Tensor
    source_row: Tensor
    group_row: Tensor
    position: Tensor

    @property
    def num_edges(self) -> int:
        return self.src.numel()


@dataclass
class DenseBlocks:
    """Complete bipartite relations as padded per-sample blocks: ``[R_d, B, L_src]`` for sources,
    ``[R_d, B, L_dst]`` for destinations, each ``L`` the most nodes one sample has of the node
    types on that side of the relations.

    ``relations`` lists the relation indices (``relation`` as a tensor ``[R_d]``); ``src_row`` /
    ``dst_node`` / ``dst_group_row`` index source rows, flat destination nodes and group rows of
    each padded position, with ``src_valid`` / ``dst_valid`` marking the real ones (padding
    indices point at row 0).
    """

    relations: list[int]
    relation: Tensor
    src_row: Tensor
    src_node: Tensor
    src_valid: Tensor
    dst_node: Tensor
    dst_group_row: Tensor
    dst_valid: Tensor

    @property
    def num_relations(self) -> int:
        return len(self.relations)


class FlatGraph:
    r"""A batch of heterogeneous graphs as one flat typed graph (see the module docstring).

    Build it once per batch with :meth:`from_batch` (a PyG batch, e.g. from
    :meth:`graphfuse.GraphBuilder.collate`) or :meth:`from_dicts` (plain ``x_dict`` /
    ``edge_index_dict`` / ``batch_dict``) and pass it to every layer with the flat features
    :meth:`flatten` gives.

    A relation whose edges join, in every sample, every source node to every destination node
    in :func:`graphfuse.data.full_bipartite_edges` order (what the builder's ``"full"`` cross
    edges are) is *complete bipartite*: layers may run it as dense per-sample blocks. Any other
    edge order gives the same results through the sparse path.

    With a :class:`BatchLayout` (which a collated batch carries) the graph is built from shapes
    and Python values alone: no host synchronisation, nothing for ``torch.compile`` to break on.

    Args:
        schema (Schema): node and edge types.
        num_nodes (Sequence[int]): nodes of each node type, in schema order.
        edge_index (Mapping[EdgeType, Tensor]): ``[2, E]`` per relation, indices local to the node
            types; a relation left out has no edges.
        node_batch (Sequence[Tensor] or None): each node type's sorted sample index (PyG's
            ``batch``); ``None`` for a single sample.
        num_samples (int, optional): the number of samples (inferred from ``node_batch``).
        dense (bool, optional): detect complete bipartite relations. (default: :obj:`True`)
        device (torch.device, optional): where the structure lives (default: that of the inputs).
        layout (BatchLayout, optional): the batch's value facts (default: computed from the
            tensors, which reads their values).
    """

    def __init__(self, schema: Schema, num_nodes: Sequence[int], edge_index: Mapping[EdgeType, Tensor],
                 node_batch: Sequence[Tensor] | None = None, num_samples: int | None = None,
                 dense: bool = True, device: torch.device | None = None, layout: BatchLayout | None = None) -> None:
        self.schema = schema
        self.num_nodes_per_type = [int(n) for n in num_nodes]
        self.num_nodes = sum(self.num_nodes_per_type)
        if self.num_nodes == 0:
            raise ValueError("FlatGraph received an empty batch (no nodes of any type); give at least one node")
        self.offsets = [0]
        for n in self.num_nodes_per_type:
            self.offsets.append(self.offsets[-1] + n)
        if device is None:
            device = next((e.device for e in edge_index.values()), None) if node_batch is None else None
            device = device or (node_batch[0].device if node_batch is not None else torch.device("cpu"))
        self.device = torch.device(device)
        self._check_shapes(edge_index, node_batch)
        sizes = dict(zip(schema.node_types, self.num_nodes_per_type, strict=True))
        if layout is None or is_debug_enabled() or not layout.describes(sizes, edge_index, num_samples):
            batches = None if node_batch is None else dict(zip(schema.node_types, node_batch, strict=True))
            layout = BatchLayout.from_tensors(sizes, edge_index, batches, num_samples)
        self.layout = layout
        self._edges: dict = {}
        self._cache: dict = {}
        self._init_row_spaces()
        self._init_samples(node_batch)
        self._init_relations(edge_index, dense)

    def with_edges(self, edge_index: Mapping[EdgeType, Tensor], dense: bool = True) -> FlatGraph:
        """The same nodes and samples with some relations' edges replaced (e.g. by k-NN edges)."""
        self._check_shapes(edge_index, None)
        node_batch = dict(zip(self.schema.node_types, self.split(self.node_batch), strict=True))
        return self._rebuilt(edge_index, dense, self.layout.with_edges(edge_index, node_batch))

    def with_dense(self, dense: bool) -> FlatGraph:
        """The same graph with complete bipartite relations detected (``dense``) or all sparse."""
        return self._rebuilt({}, dense, self.layout)

    def _rebuilt(self, edge_index: Mapping[EdgeType, Tensor], dense: bool, layout: BatchLayout) -> FlatGraph:
        graph = copy.copy(self)  # node layout and row spaces are shared; edge structure is rebuilt
        graph._edges, graph._cache, graph.layout = {}, {}, layout
        graph._init_relations({**dict(zip(self.schema.edge_types, self.edge_index, strict=True)), **edge_index}, dense)
        return graph

    @classmethod
    def from_dicts(cls, metadata: Metadata | Schema, num_nodes_dict: Mapping[NodeType, int],
                   edge_index_dict: Mapping[EdgeType, Tensor], batch_dict: Mapping[NodeType, Tensor] | None = None,
                   num_samples: int | None = None, dense: bool = True, layout: BatchLayout | None = None
                   ) -> FlatGraph:
        """From per-type node counts, ``edge_index_dict`` and (optionally) ``batch_dict`` and the
        batch's :class:`BatchLayout`; a node type left out has no nodes."""
        schema = Schema.from_metadata(metadata)
        unknown = [key for key in edge_index_dict if tuple(key) not in schema.edge_types]
        if unknown:
            raise ValueError(f"edge_index_dict holds edge types {unknown} that the layer was not built for; "
                             f"its edge types are {list(schema.edge_types)}")
        unknown = [key for key in num_nodes_dict if key not in schema.node_types]
        if unknown:
            raise ValueError(f"Node types {unknown} are not among the layer's node types {list(schema.node_types)}")
        sizes = [int(num_nodes_dict.get(t, 0)) for t in schema.node_types]
        device = next((e.device for e in edge_index_dict.values()), None)
        batches = None
        if batch_dict is not None:
            device = next((b.device for b in batch_dict.values()), device)
            batches = []
            for node_type, size in zip(schema.node_types, sizes, strict=True):
                batch = batch_dict.get(node_type)
                if batch is None:
                    if size:
                        raise ValueError(f"batch_dict has no entry for node type {node_type!r}, which has {size} "
                                         "nodes; give every node type's batch vector or none at all")
                    batch = torch.zeros(0, dtype=torch.long, device=device)
                batches.append(batch)
        return cls(schema, sizes, {tuple(k): v for k, v in edge_index_dict.items()}, batches, num_samples,
                   dense=dense, device=device, layout=layout)

    @classmethod
    def from_batch(cls, batch, metadata: Metadata | Schema | None = None, dense: bool = True) -> FlatGraph:
        """From a PyG ``HeteroData`` or its ``Batch`` (the builder's :meth:`collate` output, whose
        :class:`BatchLayout` it uses)."""
        if not isinstance(batch, HeteroData):
            raise TypeError(f"FlatGraph.from_batch takes a PyG HeteroData or its Batch (builder.collate), got "
                            f"{type(batch).__name__}; for dicts of edges use FlatGraph.from_dicts")
        metadata = batch.metadata() if metadata is None else metadata
        schema = Schema.from_metadata(metadata)
        num_nodes = {t: batch[t].num_nodes or 0 for t in schema.node_types if t in batch.node_types}
        batch_dict = None
        num_samples = getattr(batch, "num_graphs", None)
        if num_samples is not None:
            batch_dict = {t: batch[t].batch for t in num_nodes if "batch" in batch[t]}
        edge_index_dict = {e: batch[e].edge_index for e in schema.edge_types
                           if e in batch.edge_types and "edge_index" in batch[e]}
        return cls.from_dicts(schema, num_nodes, edge_index_dict, batch_dict or None, num_samples, dense,
                              batch_layout(batch))

    def _check_shapes(self, edge_index: Mapping[EdgeType, Tensor], node_batch: Sequence[Tensor] | None) -> None:
        if node_batch is not None:
            for node_type, batch, n in zip(self.schema.node_types, node_batch, self.num_nodes_per_type, strict=True):
                if batch.dim() != 1 or batch.numel() != n:
                    raise ValueError(f"The batch vector of node type {node_type!r} must have one entry per node "
                                     f"({n}), got shape {tuple(batch.shape)}")
        for edge_type, ei in edge_index.items():
            if not isinstance(ei, Tensor) or ei.dtype != torch.long or ei.dim() != 2 or ei.size(0) != 2:
                raise TypeError(f"edge_index of {edge_type} must be a [2, num_edges] long tensor, got "
                                f"{type(ei).__name__} {getattr(ei, 'dtype', '')} {tuple(getattr(ei, 'shape', ()))}")

    def _init_samples(self, node_batch: Sequence[Tensor] | None) -> None:
        T, B = self.schema.num_node_types, self.layout.num_samples
        long = dict(dtype=torch.long, device=self.device)
        self.num_samples = B
        zeros = (0,) * B
        counts = [self.layout.counts.get(t, zeros) if n else zeros
                  for t, n in zip(self.schema.node_types, self.num_nodes_per_type, strict=True)]
        # The most nodes of each type in one sample: a padded block is as long as its node types need.
        self.type_block_size = [max(c, default=0) for c in counts]
        self.block_size = max(1, *self.type_block_size)
        # Which node types leave padding in their [B, block_size] slots.
        self.padded = [any(c != self.block_size for c in per_sample) for per_sample in counts]
        self.counts = torch.tensor(counts, **long).view(T, B)
        self.node_type = torch.cat([torch.full((n,), t, **long) for t, n in enumerate(self.num_nodes_per_type)])
        self.node_batch = (torch.zeros(self.num_nodes, **long) if node_batch is None
                           else torch.cat(list(node_batch)).to(**long))
        self.type_sample = self.node_type * B + self.node_batch
        starts = (torch.cumsum(self.counts, 1) - self.counts).flatten()
        self.position = torch.arange(self.num_nodes, device=self.device) - (
            torch.tensor(self.offsets[:-1], device=self.device)[self.node_type] + starts[self.type_sample])

    def _init_relations(self, edge_index: Mapping[EdgeType, Tensor], dense: bool) -> None:
        self.edge_index: list[Tensor] = []
        self.dense: list[bool] = []
        self.self_loops: list[bool] = []
        for edge_type in self.schema.edge_types:
            ei = edge_index.get(edge_type)
            if ei is None:
                ei = torch.zeros(2, 0, dtype=torch.long, device=self.device)
            self.edge_index.append(ei)
            self.dense.append(dense and ei.numel() > 0 and edge_type in self.layout.complete)
            self.self_loops.append(edge_type in self.layout.self_loops)

    def cached(self, key, make):
        """``make()``, computed once per graph under ``key``: structure that layers share."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    # Row spaces ---------------------------------------------------------------------------------
    def _init_row_spaces(self) -> None:
        # Plain attributes, not cached properties: their lock is beyond torch.compile (Python < 3.12).
        self.source_row_offsets, self.group_row_offsets, self.group_slot_offsets = [0], [0], [0]
        for t, n in enumerate(self.num_nodes_per_type):
            self.source_row_offsets.append(self.source_row_offsets[-1] + n * len(self.schema.out_relations[t]))
            self.group_row_offsets.append(self.group_row_offsets[-1] + n * len(self.schema.in_relations[t]))
            # where each node type's relations start among the (type, incoming relation) slots
            self.group_slot_offsets.append(self.group_slot_offsets[-1] + len(self.schema.in_relations[t]))

    @property
    def num_source_rows(self) -> int:
        return self.source_row_offsets[-1]

    @property
    def num_group_rows(self) -> int:
        return self.group_row_offsets[-1]

    @property
    def group_node(self) -> Tensor:
        """The flat destination node of every group row."""
        return self.cached("group_node", lambda: torch.cat([
            torch.arange(self.offsets[t], self.offsets[t + 1], device=self.device)
            .repeat_interleave(len(self.schema.in_relations[t])) for t in range(self.schema.num_node_types)]))

    @property
    def group_relation(self) -> Tensor:
        """The relation of every group row."""
        return self.cached("group_relation", lambda: torch.cat([
            torch.tensor(self.schema.in_relations[t], dtype=torch.long, device=self.device).repeat(n)
            for t, n in enumerate(self.num_nodes_per_type)]))

    def _source_rows(self, r: int, src_local: Tensor) -> Tensor:
        s = self.schema.src_type[r]
        return self.source_row_offsets[s] + src_local * len(self.schema.out_relations[s]) + self.schema.src_slot[r]

    def _group_rows(self, r: int, dst_local: Tensor) -> Tensor:
        t = self.schema.dst_type[r]
        return self.group_row_offsets[t] + dst_local * len(self.schema.in_relations[t]) + self.schema.dst_slot[r]

    # Edges --------------------------------------------------------------------------------------
    def sparse_edges(self, self_loops: bool = False, include_dense: bool = False) -> SparseEdges:
        """The edges of every relation not run densely (all relations with ``include_dense``),
        with self loops added to relations within one node type when ``self_loops`` (existing ones
        are removed first, as PyG does)."""
        key = (self_loops, include_dense)
        if key not in self._edges:
            self._edges[key] = self._make_sparse_edges(self_loops, include_dense)
        return self._edges[key]

    def _make_sparse_edges(self, self_loops: bool, include_dense: bool) -> SparseEdges:
        parts: list[tuple[Tensor, ...]] = []
        schema = self.schema
        for r, ei in enumerate(self.edge_index):
            if self.dense[r] and not include_dense and not (self_loops and schema.src_type[r] == schema.dst_type[r]):
                continue
            s, t = schema.src_type[r], schema.dst_type[r]
            src_local, dst_local = ei[0], ei[1]
            position = torch.arange(ei.size(1), device=self.device)
            if self_loops and s == t:
                if self.self_loops[r]:  # the layout says whether there are any: no mask, no sync otherwise
                    keep = src_local != dst_local
                    src_local, dst_local, position = src_local[keep], dst_local[keep], position[keep]
                loops = torch.arange(self.num_nodes_per_type[t], device=self.device)
                src_local = torch.cat([src_local, loops])
                dst_local = torch.cat([dst_local, loops])
                position = torch.cat([position, torch.full_like(loops, -1)])
            parts.append((src_local + self.offsets[s], dst_local + self.offsets[t],
                          torch.full_like(src_local, r), self._source_rows(r, src_local),
                          self._group_rows(r, dst_local), position))
        if not parts:
            empty = torch.zeros(0, dtype=torch.long, device=self.device)
            return SparseEdges(empty, empty, empty, empty, empty, empty)
        return SparseEdges(*(torch.cat(columns) for columns in zip(*parts, strict=True)))

    def by_relation(self, edges: SparseEdges, values: Tensor) -> dict[EdgeType, tuple[Tensor, Tensor]]:
        """Per-edge ``values`` of ``edges`` as ``{edge_type: (edge_index, values)}``, with local
        indices, each relation's edges in input order (added self loops last)."""
        result = {}
        for r, edge_type in enumerate(self.schema.edge_types):
            s, t = self.schema.src_type[r], self.schema.dst_type[r]
            chosen = edges.relation == r
            edge_index = torch.stack([edges.src[chosen] - self.offsets[s], edges.dst[chosen] - self.offsets[t]])
            result[edge_type] = (edge_index, values[chosen])
        return result

    def runs_dense(self, self_loops: bool = False) -> list[bool]:
        """Which relations a layer runs as dense blocks (relations within one type with added self
        loops are not complete bipartite any more)."""
        schema = self.schema
        return [d and not (self_loops and schema.src_type[r] == schema.dst_type[r]) for r, d in enumerate(self.dense)]

    def dense_blocks(self, self_loops: bool = False) -> DenseBlocks | None:
        """The relations run densely as padded per-sample blocks, or ``None`` when there are none."""
        key = ("dense", self_loops)
        if key not in self._edges:
            self._edges[key] = self._make_dense_blocks(self.runs_dense(self_loops))
        return self._edges[key]

    @property
    def slot_table(self) -> Tensor:
        """Flat node index at each padded (type, sample, position), ``-1`` where there is none."""
        return self.cached("slot_table", self._make_slot_table)

    def _make_slot_table(self) -> Tensor:
        T, B, L = self.schema.num_node_types, self.num_samples, self.block_size
        table = torch.full((T * B * L,), -1, dtype=torch.long, device=self.device)
        table[self.type_sample * L + self.position] = torch.arange(self.num_nodes, device=self.device)
        return table.view(T, B, L)

    def _make_dense_blocks(self, run_dense: list[bool]) -> DenseBlocks | None:
        relations = [r for r, d in enumerate(run_dense) if d]
        if not relations:
            return None
        schema = self.schema
        rel = torch.tensor(relations, device=self.device)
        src_type = torch.tensor([schema.src_type[r] for r in relations], device=self.device)
        dst_type = torch.tensor([schema.dst_type[r] for r in relations], device=self.device)
        # Padded to the longest sample of the node types on each side, not of the whole batch: a short
        # modality's blocks stay short beside a long one (a recording of 60,000 frames, say).
        src_size = max(1, *(self.type_block_size[schema.src_type[r]] for r in relations))
        dst_size = max(1, *(self.type_block_size[schema.dst_type[r]] for r in relations))
        src_node, dst_node = self.slot_table[src_type, :, :src_size], self.slot_table[dst_type, :, :dst_size]
        src_valid, dst_valid = src_node >= 0, dst_node >= 0
        src_node, dst_node = src_node.clamp_min(0), dst_node.clamp_min(0)
        src_local = src_node - torch.tensor(self.offsets[:-1], device=self.device)[src_type].view(-1, 1, 1)
        dst_local = dst_node - torch.tensor(self.offsets[:-1], device=self.device)[dst_type].view(-1, 1, 1)
        src_row = torch.stack([self._source_rows(r, src_local[i]) for i, r in enumerate(relations)])
        dst_group_row = torch.stack([self._group_rows(r, dst_local[i]) for i, r in enumerate(relations)])
        return DenseBlocks(relations, rel, src_row * src_valid, src_node, src_valid, dst_node,
                           dst_group_row * dst_valid, dst_valid)

    # Features -----------------------------------------------------------------------------------
    def flatten(self, x_dict: Mapping[NodeType, Tensor], owner: str = "FlatGraph") -> Tensor:
        """``x_dict`` as one ``[num_nodes, C]`` tensor in the flat layout (a type left out has no nodes)."""
        xs, width = [], None
        for node_type, n in zip(self.schema.node_types, self.num_nodes_per_type, strict=True):
            x = x_dict.get(node_type)
            if x is None:
                if n:
                    raise ValueError(f"'{owner}' got no features for node type {node_type!r}, which has {n} nodes")
                continue
            if x.dim() != 2 or x.size(0) != n:
                raise ValueError(f"'{owner}' expected features of shape [{n}, C] for node type {node_type!r}, "
                                 f"got {tuple(x.shape)}")
            if width is not None and x.size(1) != width[1]:
                raise ValueError(f"'{owner}' needs one feature size for all node types, got {width[1]} for "
                                 f"{width[0]!r} and {x.size(1)} for {node_type!r}; project them first (e.g. with "
                                 "graphfuse.nn.NodeEncoders)")
            width = (node_type, x.size(1))
            xs.append(x)
        return torch.cat(xs) if len(xs) > 1 else xs[0]

    def split(self, x: Tensor) -> tuple[Tensor, ...]:
        """A flat tensor's per-node-type parts (``torch.split``: its backward concatenates, where
        slicing would zero-fill a full-size gradient per part)."""
        return torch.split(x, self.num_nodes_per_type)

    def unflatten(self, x: Tensor) -> dict[NodeType, Tensor]:
        """A flat ``[num_nodes, ...]`` tensor back as ``x_dict``."""
        return dict(zip(self.schema.node_types, self.split(x), strict=True))

    def __repr__(self) -> str:
        dense = [self.schema.edge_types[r] for r, d in enumerate(self.dense) if d]
        return (f"{self.__class__.__name__}(num_nodes={self.num_nodes}, num_samples={self.num_samples}, "
                f"num_relations={self.schema.num_relations}, dense={dense})")
