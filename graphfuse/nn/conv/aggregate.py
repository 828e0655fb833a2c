"""Deprecated: moved to :mod:`graphfuse.nn.conv.fused.aggregate` (kept for one release)."""
import warnings

from graphfuse.nn.conv.base import NORMALIZATIONS  # noqa: F401
from graphfuse.nn.conv.fused.aggregate import *  # noqa: F403

warnings.warn("graphfuse.nn.conv.aggregate moved to graphfuse.nn.conv.fused.aggregate; import it from there",
              DeprecationWarning, stacklevel=2)
