"""Deprecated: moved to :mod:`graphfuse.nn.conv.fused.aggregate` (``NORMALIZATIONS`` to
:mod:`graphfuse.nn.conv.base`); these aliases last one release."""
from graphfuse.deprecation import moved

_fused = moved(__name__, "graphfuse.nn.conv.fused.aggregate",
               ["EdgeAttention", "EdgeLayout", "SparseAdjacency", "dense_scale", "edge_layout", "pooled_by_sample",
                "received_rows", "relation_aggregate", "relational_attention", "sparse_adjacency", "spmm"])
_base = moved(__name__, "graphfuse.nn.conv.base", ["NORMALIZATIONS"])


def __getattr__(name: str):
    return _base(name) if name == "NORMALIZATIONS" else _fused(name)
