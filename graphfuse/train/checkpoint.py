"""Deprecated: safe checkpoints moved to :mod:`graphfuse.checkpoint` (below the models, which load
weights too); these aliases last one release."""
from graphfuse.deprecation import moved

__getattr__ = moved(__name__, "graphfuse.checkpoint", ["UnsafeCheckpointError", "load_checkpoint", "load_weights",
                                                       "save_checkpoint"])
