"""What every relational fusion layer shares: the schema, input checks and the two call styles."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from graphfuse.nn.flat import FlatGraph, Metadata, Schema


class RelationalConv(torch.nn.Module):
    """Base of the fusion layers: called on flat features with a :class:`FlatGraph`, or PyG-style.

    * ``conv(x, graph)`` with ``x`` a ``[num_nodes, in_channels]`` tensor in ``graph``'s flat
      layout returns ``[num_nodes, out]`` (what :class:`FusionEncoder` does: the graph structure is
      built once per batch and shared by all layers);
    * ``conv(x_dict, edge_index_dict, batch_dict=None)`` returns a dict per node type, like PyG's
      heterogeneous layers (``batch_dict`` keeps samples apart for the dense path).

    Subclasses implement :meth:`propagate_flat`.
    """

    def __init__(self, in_channels: int, out_channels: int, metadata: Metadata | Schema) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"'{self.__class__.__name__}' needs a positive integer '{name}', got {value!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.schema = Schema.from_metadata(metadata)

    def forward(self, x: Tensor | Mapping[str, Tensor], graph: FlatGraph | Mapping,
                batch_dict: Mapping[str, Tensor] | None = None,
                return_attention_weights: bool | None = None):
        """Fuses ``x`` over ``graph`` (see the class docstring for the two call styles)."""
        as_dict = isinstance(x, Mapping)
        if as_dict:
            if not isinstance(graph, FlatGraph):
                if not isinstance(graph, Mapping):
                    raise TypeError(f"'{self.__class__.__name__}' called with x_dict needs an edge_index_dict or a "
                                    f"FlatGraph, got {type(graph).__name__}")
                graph = FlatGraph.from_dicts(self.schema, {t: v.size(0) for t, v in x.items()}, graph, batch_dict)
            flat = graph.flatten(x, self.__class__.__name__)
        else:
            if not isinstance(graph, FlatGraph):
                raise TypeError(f"'{self.__class__.__name__}' received a flat feature tensor, which needs a "
                                f"FlatGraph (got {type(graph).__name__}); pass x_dict and edge_index_dict instead, "
                                "or build the graph with FlatGraph.from_batch(batch)")
            flat = x
        self._check(flat, graph)
        out, weights = self.propagate_flat(flat, graph, bool(return_attention_weights))
        if as_dict:
            out = graph.unflatten(out)
        return (out, weights) if return_attention_weights else out

    def _check(self, x: Tensor, graph: FlatGraph) -> None:
        name = self.__class__.__name__
        if graph.schema.node_types != self.schema.node_types or graph.schema.edge_types != self.schema.edge_types:
            raise ValueError(f"'{name}' was built for node types {list(self.schema.node_types)} and edge types "
                             f"{list(self.schema.edge_types)} but the graph has {list(graph.schema.node_types)} and "
                             f"{list(graph.schema.edge_types)}; build the FlatGraph with the layer's metadata")
        if x.dim() != 2 or x.size(0) != graph.num_nodes:
            raise ValueError(f"'{name}' expected node features of shape [{graph.num_nodes}, {self.in_channels}], "
                             f"got {tuple(x.shape)}")
        if x.size(1) != self.in_channels:
            raise ValueError(f"'{name}' was built for {self.in_channels} input channels but received features "
                             f"with {x.size(1)}; project them to {self.in_channels} first or build the layer "
                             f"with in_channels={x.size(1)}")

    def propagate_flat(self, x: Tensor, graph: FlatGraph, return_weights: bool) -> tuple[Tensor, dict | None]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"num_relations={self.schema.num_relations})")
