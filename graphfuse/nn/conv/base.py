"""What every relational fusion layer shares: the schema, input checks, the two call styles and
the choice between the reference path and the fused kernels."""
from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import torch
from torch import Tensor
from torch_geometric.utils import degree

from graphfuse.checks import check_choice
from graphfuse.deprecation import GraphfuseDeprecationWarning
from graphfuse.nn.conv.fused.rules import DEFAULT_RULES, KernelRules
from graphfuse.nn.flat import FlatGraph, Metadata, Schema, SparseEdges

PATHS = ("auto", "fused", "reference")
NORMALIZATIONS = ("sym", "mean", "sum")


class RelationalConv(torch.nn.Module):
    """Base of the fusion layers: called on flat features with a :class:`FlatGraph`, or PyG-style.

    * ``conv(x, graph)`` with ``x`` a ``[num_nodes, in_channels]`` tensor in ``graph``'s flat
      layout returns ``[num_nodes, out]`` (what :class:`FusionEncoder` does: the graph structure is
      built once per batch and shared by all layers);
    * ``conv(x_dict, edge_index_dict, batch_dict=None)`` returns a dict per node type, like PyG's
      heterogeneous layers (``batch_dict`` keeps samples apart for the dense path).

    Every conv computes the same function two ways, which the conformance tests hold equal:

    * the *reference* path, :meth:`propagate`, reads like a PyG layer: gather each edge's source,
      compute its message, scatter-add or scatter-softmax it into its destination, over every
      edge of the batch (:meth:`FlatGraph.sparse_edges`);
    * the *fused* path, :meth:`propagate_fused`, runs the kernels of
      :mod:`graphfuse.nn.conv.fused` (CSR products, per-sample blocks for complete bipartite
      relations, hand-written autograd), chosen per relation by :class:`KernelRules`.

    ``path="auto"`` runs the fused kernels in eager mode, the fastest there, and the reference
    path under ``torch.compile``, which cannot trace sparse CSR tensors or the hand-written
    autograd functions but fuses the reference's gathers and scatters itself.

    An attention conv hands its weights to :attr:`attention_recorder` when one is set
    (``recorder(conv, weights)`` after every call, with ``weights`` as
    ``return_attention_weights=True`` gives them): how :mod:`graphfuse.explain` reads the attention
    of every layer of a model without changing what the model returns.

    Subclasses implement :meth:`propagate` and, where they have fused kernels,
    :meth:`propagate_fused` (which defaults to :meth:`propagate`).

    Args:
        in_channels (int): input features per node.
        out_channels (int): output features per node (per head for GAT).
        metadata (tuple): ``(node_types, edge_types)``, as ``HeteroData.metadata()`` gives.
        path (str, optional): ``"auto"``, ``"fused"`` or ``"reference"``; the attention convs' fused
            kernels are differentiable once, so second derivatives need ``"reference"``.
            (default: :obj:`"auto"`)
        rules (KernelRules, optional): how the fused path runs each relation.
            (default: :obj:`KernelRules()`)
    """

    def __init__(self, in_channels: int, out_channels: int, metadata: Metadata | Schema, path: str = "auto",
                 rules: KernelRules | None = None) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"'{self.__class__.__name__}' needs a positive integer '{name}', got {value!r}")
        check_choice(path, PATHS, f"{self.__class__.__name__} 'path'")
        if rules is not None and not isinstance(rules, KernelRules):
            raise TypeError(f"'{self.__class__.__name__}' takes 'rules' as a graphfuse.nn.conv.fused.KernelRules, "
                            f"got {type(rules).__name__}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.schema = Schema.from_metadata(metadata)
        self.path = path
        self.rules = DEFAULT_RULES if rules is None else rules
        self.attention_recorder: Callable[[RelationalConv, dict], None] | None = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "propagate_flat" in cls.__dict__ and "propagate" not in cls.__dict__:
            warnings.warn(f"{cls.__name__}.propagate_flat is deprecated: name it propagate (the reference path) "
                          "and put fused kernels, if any, in propagate_fused", GraphfuseDeprecationWarning,
                          stacklevel=2)
            cls.propagate = cls.propagate_flat

    def runs_fused(self) -> bool:
        """Whether the next call takes the fused path (see the class docstring)."""
        return self.path == "fused" or (self.path == "auto" and not torch.compiler.is_compiling())

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
        propagate = self.propagate_fused if self.runs_fused() else self.propagate
        recorder = self.attention_recorder
        out, weights = propagate(flat, graph, bool(return_attention_weights) or recorder is not None)
        if recorder is not None and weights is not None:
            recorder(self, weights)
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

    def propagate(self, x: Tensor, graph: FlatGraph, return_weights: bool) -> tuple[Tensor, dict | None]:
        """The reference path: ``(out, attention weights or None)``."""
        raise NotImplementedError(f"'{self.__class__.__name__}' must implement propagate(x, graph, return_weights)")

    def propagate_fused(self, x: Tensor, graph: FlatGraph, return_weights: bool) -> tuple[Tensor, dict | None]:
        """The fused path, equal to :meth:`propagate` (which it is unless a subclass has kernels)."""
        return self.propagate(x, graph, return_weights)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"num_relations={self.schema.num_relations})")


def type_linear(x: Tensor, weight: Tensor, graph: FlatGraph) -> Tensor:
    """``x @ weight[t]`` for the nodes of each node type ``t`` (``weight`` ``[T, C_in, C_out]``)."""
    outs = [part @ weight[t] for t, part in enumerate(graph.split(x))]
    return torch.cat(outs) if len(outs) > 1 else outs[0]


def edge_norm(graph: FlatGraph, edges: SparseEdges, normalize: str) -> Tensor:
    r"""``[E]`` weight of each edge :math:`j \to i` of relation :math:`r`: :math:`1/\sqrt{d^{in}_r(i)
    d^{out}_r(j)}` (``"sym"``), :math:`1/d^{in}_r(i)` (``"mean"``) or 1 (``"sum"``)."""
    if normalize == "sum":
        return torch.ones(edges.num_edges, device=graph.device)
    in_degree = degree(edges.group_row, graph.num_group_rows)[edges.group_row]
    if normalize == "mean":
        return in_degree.reciprocal()
    return (in_degree * degree(edges.source_row, graph.num_source_rows)[edges.source_row]).rsqrt()


def relation_counts(graph: FlatGraph, edges: SparseEdges) -> Tensor:
    """``[num_nodes]``: how many relations bring each node at least one edge."""
    received = (degree(edges.group_row, graph.num_group_rows) > 0).float()
    return torch.zeros(graph.num_nodes, device=graph.device).index_add(0, graph.group_node, received)
