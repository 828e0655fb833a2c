"""Deprecated: graph construction moved to :mod:`graphfuse.data`; these aliases last one release."""
from graphfuse.deprecation import moved

__all__ = ["CallableStrategy", "CrossEdges", "CrossModalStrategy", "FullBipartite", "GraphBuilder", "RandomBipartite",
           "Relation", "StridedBipartite", "TemporalAlignment", "VirtualNodes", "chain_edges", "from_dgl",
           "from_networkx", "full_bipartite_edges", "grid_edges", "resolve_strategy", "to_dgl", "to_networkx"]
__getattr__ = moved(__name__, "graphfuse.data", __all__)
