"""Pair graphs for re-ranking: one query's query-side nodes and one candidate's gallery-side nodes
joined into one sample graph, with the builder's cross-modal edges between them."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor
from torch_geometric.data import Batch

from graphfuse.data.builder import GraphBuilder
from graphfuse.data.nodes import NodeSet

NodeSets = Mapping[str, NodeSet]


class PairGraphs:
    """Batches (query, candidate) pairs as graphs: ``pair_graphs(pairs, query_types, gallery_types)``
    with ``pairs`` ``[P, 2]`` of (query sample, gallery sample) indices gives one batch of ``P``
    graphs, each made of the query sample's ``query_types`` nodes and the gallery sample's
    ``gallery_types`` nodes (a model passes the node types of its two sides).

    A re-ranking model scores these batches; building them belongs to the data pipeline (the
    builder's strategies draw the cross-modal edges), so the model holds none of it.

    Args:
        builder (GraphBuilder): the builder of the data.
        query_sets (Sequence[Mapping[str, NodeSet]]): featurised query samples.
        gallery_sets (Sequence[Mapping[str, NodeSet]], optional): featurised gallery samples
            (default: ``query_sets``, the two sides of the same samples).
    """

    def __init__(self, builder: GraphBuilder, query_sets: Sequence[NodeSets],
                 gallery_sets: Sequence[NodeSets] | None = None) -> None:
        if not isinstance(builder, GraphBuilder):
            raise TypeError(f"PairGraphs needs the GraphBuilder of the data, got {type(builder).__name__}")
        self.builder = builder
        self.query_sets = query_sets
        self.gallery_sets = query_sets if gallery_sets is None else gallery_sets

    def __call__(self, pairs: Tensor, query_types: Sequence[str], gallery_types: Sequence[str]) -> Batch:
        unknown = [t for t in (*query_types, *gallery_types) if t not in self.builder.node_types]
        if unknown:
            raise ValueError(f"PairGraphs sides name node types {unknown}, which the builder lacks; its node types "
                             f"are {self.builder.node_types}")
        if pairs.dim() != 2 or pairs.size(1) != 2:
            raise ValueError(f"PairGraphs takes pairs as a [P, 2] tensor of (query, gallery) indices, got shape "
                             f"{tuple(pairs.shape)}")
        if pairs.numel() and (int(pairs.min()) < 0 or int(pairs[:, 0].max()) >= len(self.query_sets)
                              or int(pairs[:, 1].max()) >= len(self.gallery_sets)):
            raise ValueError(f"PairGraphs got pairs up to ({int(pairs[:, 0].max())}, {int(pairs[:, 1].max())}) for "
                             f"{len(self.query_sets)} query and {len(self.gallery_sets)} gallery samples")
        samples = []
        for i, j in pairs.tolist():
            query, candidate = self.query_sets[i], self.gallery_sets[j]
            sample = {t: query[t] for t in query_types if t in query}
            sample.update({t: candidate[t] for t in gallery_types if t in candidate})
            samples.append(sample)
        return self.builder.collate(samples)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(queries={len(self.query_sets)}, gallery={len(self.gallery_sets)})"
