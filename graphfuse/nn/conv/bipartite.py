"""Deprecated: moved to :mod:`graphfuse.nn.conv.fused.bipartite` (kept for one release)."""
import warnings

from graphfuse.nn.conv.fused.bipartite import *  # noqa: F403

warnings.warn("graphfuse.nn.conv.bipartite moved to graphfuse.nn.conv.fused.bipartite; import it from there",
              DeprecationWarning, stacklevel=2)
