"""Graph construction: intra- and cross-modal edges, the builder, batching and conversion."""
from graphfuse.graph.builder import GraphBuilder, Relation
from graphfuse.graph.convert import from_dgl, from_networkx, to_dgl, to_networkx
from graphfuse.graph.cross import (
    CallableStrategy,
    CrossEdges,
    CrossModalStrategy,
    FullBipartite,
    RandomBipartite,
    StridedBipartite,
    TemporalAlignment,
    VirtualNodes,
    resolve_strategy,
)
from graphfuse.graph.edges import chain_edges, full_bipartite_edges, grid_edges

__all__ = [
    "CallableStrategy",
    "CrossEdges",
    "CrossModalStrategy",
    "FullBipartite",
    "GraphBuilder",
    "RandomBipartite",
    "Relation",
    "StridedBipartite",
    "TemporalAlignment",
    "VirtualNodes",
    "chain_edges",
    "from_dgl",
    "from_networkx",
    "full_bipartite_edges",
    "grid_edges",
    "resolve_strategy",
    "to_dgl",
    "to_networkx",
]
