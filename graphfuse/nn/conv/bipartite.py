"""Deprecated: moved to :mod:`graphfuse.nn.conv.fused.bipartite` (the size thresholds are
:class:`~graphfuse.nn.conv.KernelRules` arguments now); these aliases last one release."""
from graphfuse.deprecation import moved

__getattr__ = moved(__name__, "graphfuse.nn.conv.fused.bipartite",
                    ["BlockAttention", "bipartite_gat", "sorted_bipartite_gat"])
