"""Deprecated (one release): the throughput benchmark's comparison methods moved to
:mod:`graphfuse.bench.comparisons` (``BASELINES`` is ``COMPARISONS`` there, ``Baseline`` is
``Comparison``), and the classic fusion baselines live in :mod:`graphfuse.baselines`."""
from __future__ import annotations

from graphfuse.deprecation import moved

RENAMED = {"BASELINES": "COMPARISONS", "Baseline": "Comparison"}
MOVED = frozenset({*RENAMED, "DGLResidualLayers", "DenseTransformerFusion", "EarlyFusionMLP", "PreparedBatch",
                   "ResidualLayers", "mean_per_sample", "prepare_dgl", "prepare_pyg"})


__getattr__ = moved(__name__, "graphfuse.bench.comparisons", {**{name: name for name in MOVED}, **RENAMED})
