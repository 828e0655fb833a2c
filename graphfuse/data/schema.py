"""The schema of the builder's graphs: their relations (and, below them, node types)."""
from __future__ import annotations

from dataclasses import dataclass

from graphfuse.data.cross import CrossModalStrategy
from graphfuse.typing import EdgeType


@dataclass(frozen=True)
class Relation:
    """One edge type of the builder's graphs; ``strategy`` is ``None`` for the source
    modality's own intra-modal edges."""

    edge_type: EdgeType
    strategy: CrossModalStrategy | None = None
