"""The schema of a builder's graphs: node types with what their inputs look like, and relations.

A model is built from a :class:`GraphSchema` alone (timm's split of model and data): it learns the
node and edge types and every input size from it, so all its parameters are sized at construction
and nothing about the data pipeline lives in the model. ``GraphBuilder.schema()`` gives it.
"""
from __future__ import annotations

from dataclasses import dataclass

from graphfuse.data.cross import CrossModalStrategy
from graphfuse.data.nodes import NodeSpec
from graphfuse.typing import EdgeType, NodeType


@dataclass(frozen=True)
class Relation:
    """One edge type of the builder's graphs; ``strategy`` is ``None`` for the source
    modality's own intra-modal edges."""

    edge_type: EdgeType
    strategy: CrossModalStrategy | None = None


@dataclass(frozen=True)
class GraphSchema:
    """Node types (with their :class:`NodeSpec`) and edge types of every graph a builder makes.

    Args:
        nodes (tuple[tuple[str, NodeSpec], ...]): node types in graph order with their specs.
        edge_types (tuple[tuple[str, str, str], ...]): relations ``(src, name, dst)``.
    """

    nodes: tuple[tuple[NodeType, NodeSpec], ...]
    edge_types: tuple[EdgeType, ...]

    def __post_init__(self) -> None:
        types = [node_type for node_type, _ in self.nodes]
        if not types or len(set(types)) != len(types):
            raise ValueError(f"A GraphSchema needs distinct node types, got {types}")
        for edge_type in self.edge_types:
            unknown = [t for t in (edge_type[0], edge_type[2]) if t not in types]
            if unknown:
                raise ValueError(f"Edge type {edge_type} names node type {unknown[0]!r}, which is not among {types}")

    @property
    def node_types(self) -> list[NodeType]:
        return [node_type for node_type, _ in self.nodes]

    @property
    def modalities(self) -> list[NodeType]:
        """The node types that come from a modality (all but virtual nodes)."""
        return [node_type for node_type, spec in self.nodes if spec.kind != "virtual"]

    def spec(self, node_type: NodeType) -> NodeSpec:
        for name, spec in self.nodes:
            if name == node_type:
                return spec
        raise ValueError(f"Node type {node_type!r} is not among the schema's {self.node_types}")

    def metadata(self) -> tuple[list[NodeType], list[EdgeType]]:
        """``(node_types, edge_types)``, as ``HeteroData.metadata()`` gives them."""
        return self.node_types, list(self.edge_types)
