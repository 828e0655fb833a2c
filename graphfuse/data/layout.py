"""What a batch's flat graph needs to know of its tensor *values*, computed once at collation on the
CPU and carried by the batch, so that a model's forward reads no tensor value (no host sync, no
``torch.compile`` graph break)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from graphfuse.typing import EdgeType, NodeType


def _counts_per_sample(batch: Tensor, num_samples: int) -> tuple[int, ...]:
    return tuple(torch.zeros(num_samples, dtype=torch.long, device=batch.device)
                 .index_add_(0, batch, torch.ones_like(batch)).tolist())


def _is_complete_bipartite(edge_index: Tensor, num_edges: int, num_dst: int, src_batch: Tensor | None,
                           dst_batch: Tensor | None) -> bool:
    """Whether in-range ``edge_index`` joins, in every sample, every source to every destination
    in :func:`graphfuse.data.full_bipartite_edges` order, given ``num_edges``, the sum over
    samples of sources times destinations: that many distinct pairs within samples are all of
    them, and strictly increasing ``(src, dst)`` keys are that order."""
    if edge_index.size(1) == 0 or edge_index.size(1) != num_edges:
        return False
    key = edge_index[0] * num_dst + edge_index[1]
    if not bool((key[1:] > key[:-1]).all()):
        return False
    return src_batch is None or bool(torch.equal(src_batch[edge_index[0]], dst_batch[edge_index[1]]))


@dataclass(frozen=True)
class BatchLayout:
    r"""What a :class:`FlatGraph` needs to know of a batch's tensor *values*, as Python values.

    A flat graph's shapes and kernels depend on a few facts that only the values of the batch
    vectors and edge indices tell: the nodes of each type in each sample (the size of the
    per-sample blocks), which relations are complete bipartite and which hold self loops.
    Reading them from device tensors would synchronise with the device and break a
    ``torch.compile`` graph in every forward, so :meth:`GraphBuilder.collate
    <graphfuse.GraphBuilder.collate>` computes them once, on the CPU, checks the batch while it
    is at it, and attaches them to the batch (:func:`attach_layout`). A :class:`FlatGraph`
    built with a layout reads no tensor value (unless :mod:`graphfuse.debug` mode is on, where
    it recomputes and checks everything); built without one, it computes the layout itself.

    Args:
        num_samples (int): samples in the batch.
        counts (Mapping[str, tuple[int, ...]]): nodes of each node type in each sample; a node
            type left out has none.
        num_edges (Mapping[EdgeType, int]): edges of each relation (a check that the layout
            describes the tensors it is used with).
        complete (frozenset): the complete bipartite relations (see :class:`FlatGraph`).
        self_loops (frozenset): the relations within one node type that hold a self loop.
    """

    num_samples: int
    counts: Mapping[NodeType, tuple[int, ...]]
    num_edges: Mapping[EdgeType, int]
    complete: frozenset[EdgeType] = frozenset()
    self_loops: frozenset[EdgeType] = frozenset()

    @classmethod
    def from_tensors(cls, num_nodes: Mapping[NodeType, int], edge_index: Mapping[EdgeType, Tensor],
                     node_batch: Mapping[NodeType, Tensor] | None = None,
                     num_samples: int | None = None) -> BatchLayout:
        """Computed from the tensors' values (one host copy each: cheap for CPU tensors), with
        every value check: sorted batch vectors, sample indices and edge indices in range."""
        if node_batch is None:
            num_samples = 1 if num_samples is None else int(num_samples)
            counts = {t: (int(n),) + (0,) * (num_samples - 1) for t, n in num_nodes.items()}
        else:
            for node_type, batch in node_batch.items():
                if batch.numel() > 1 and bool((batch[1:] < batch[:-1]).any()):
                    raise ValueError(f"The batch vector of node type {node_type!r} must be sorted (as in a PyG "
                                     "Batch): nodes of a sample lie together, samples in order")
            present = [b for b in node_batch.values() if b.numel()]
            inferred = max((int(b[-1]) for b in present), default=-1) + 1
            num_samples = inferred if num_samples is None else int(num_samples)
            if inferred > num_samples or any(bool(b[0] < 0) for b in present):
                raise ValueError(f"batch vectors hold sample indices up to {inferred - 1} but num_samples is "
                                 f"{num_samples}")
            counts = {t: _counts_per_sample(node_batch[t].long(), num_samples) if n else (0,) * num_samples
                      for t, n in num_nodes.items()}
        layout = cls(num_samples, counts, {})
        return layout.with_edges(edge_index, node_batch)

    @classmethod
    def from_batch(cls, batch) -> BatchLayout:
        """Of a PyG ``HeteroData`` or ``Batch`` (:meth:`from_tensors`)."""
        num_nodes = {t: batch[t].num_nodes or 0 for t in batch.node_types}
        node_batch = None
        num_samples = getattr(batch, "num_graphs", None)
        if num_samples is not None:
            node_batch = {t: batch[t].batch for t in num_nodes if "batch" in batch[t]} or None
        edge_index = {e: batch[e].edge_index for e in batch.edge_types if "edge_index" in batch[e]}
        return cls.from_tensors(num_nodes, edge_index, node_batch, num_samples)

    def with_edges(self, edge_index: Mapping[EdgeType, Tensor],
                   node_batch: Mapping[NodeType, Tensor] | None = None) -> BatchLayout:
        """This layout with the facts of some relations' edges replaced by those of ``edge_index``
        (checked to lie within their node types; ``node_batch`` as in :meth:`from_tensors`)."""
        zeros = (0,) * self.num_samples
        num_edges, complete, self_loops = dict(self.num_edges), set(self.complete), set(self.self_loops)
        for edge_type, ei in edge_index.items():
            src, _, dst = edge_type
            src_counts, dst_counts = self.counts.get(src, zeros), self.counts.get(dst, zeros)
            n_src, n_dst = sum(src_counts), sum(dst_counts)
            num_edges[edge_type] = ei.size(1)
            complete.discard(edge_type)
            self_loops.discard(edge_type)
            if not ei.numel():
                continue
            low, high = ei.min(dim=1).values.tolist(), ei.max(dim=1).values.tolist()
            if min(low) < 0 or high[0] >= n_src or high[1] >= n_dst:
                raise ValueError(f"edge_index of {edge_type} points outside its node types: indices up to "
                                 f"({high[0]}, {high[1]}) for {n_src} {src!r} and {n_dst} {dst!r} nodes")
            pairs = sum(a * b for a, b in zip(src_counts, dst_counts, strict=True))
            batches = (None, None) if node_batch is None else (node_batch[src], node_batch[dst])
            if _is_complete_bipartite(ei, pairs, n_dst, *batches):
                complete.add(edge_type)
            if src == dst and bool((ei[0] == ei[1]).any()):
                self_loops.add(edge_type)
        return BatchLayout(self.num_samples, self.counts, num_edges, frozenset(complete), frozenset(self_loops))

    def describes(self, num_nodes: Mapping[NodeType, int], edge_index: Mapping[EdgeType, Tensor],
                  num_samples: int | None) -> bool:
        """Whether the layout fits these sizes (Python integers only: no tensor value is read);
        node types and relations may be left out, as for a subgraph."""
        return ((num_samples is None or num_samples == self.num_samples)
                and all(n == 0 or sum(self.counts.get(t, ())) == n for t, n in num_nodes.items())
                and all(self.num_edges.get(e) == ei.size(1) for e, ei in edge_index.items()))


_LAYOUT_ATTRIBUTE = "_flat_layout"


def attach_layout(batch, layout: BatchLayout | None = None):
    """Attaches ``layout`` (by default computed from ``batch``) to a PyG batch, where
    :meth:`FlatGraph.from_batch` and the graph models find it; returns the batch. It survives
    ``batch.to(device)`` and copies, not :meth:`~torch_geometric.data.Batch.get_example`."""
    # In the instance dict, not a PyG attribute: Batch.get_example / to_data_list would copy a
    # PyG attribute into every sample, where it would describe the wrong graph.
    batch.__dict__[_LAYOUT_ATTRIBUTE] = BatchLayout.from_batch(batch) if layout is None else layout
    return batch


def batch_layout(batch) -> BatchLayout | None:
    """The layout :func:`attach_layout` attached to ``batch``, or ``None``."""
    return batch.__dict__.get(_LAYOUT_ATTRIBUTE)
