"""Deprecated (one release): the throughput benchmark's comparison methods moved to
:mod:`graphfuse.bench.comparisons` (``BASELINES`` is ``COMPARISONS`` there, ``Baseline`` is
``Comparison``), and the classic fusion baselines live in :mod:`graphfuse.baselines`."""
from __future__ import annotations

from graphfuse.bench import comparisons
from graphfuse.deprecation import moved

RENAMED = {"BASELINES": "COMPARISONS", "Baseline": "Comparison"}
MOVED = frozenset({*RENAMED, "DGLResidualLayers", "DenseTransformerFusion", "EarlyFusionMLP", "PreparedBatch",
                   "ResidualLayers", "mean_per_sample", "prepare_dgl", "prepare_pyg"})


def __getattr__(name: str):
    if name in MOVED:
        return moved(f"{__name__}.{name}", comparisons, RENAMED.get(name, name))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
