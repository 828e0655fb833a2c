"""Relational graph convolution over a flat typed graph."""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.utils import scatter

from graphfuse.checks import check_choice
from graphfuse.nn.conv import fused
from graphfuse.nn.conv.base import NORMALIZATIONS, RelationalConv, edge_norm, relation_counts, type_linear
from graphfuse.nn.conv.fused.rules import KernelRules
from graphfuse.nn.flat import FlatGraph, Metadata, Schema


class RelationalGCNConv(RelationalConv):
    r"""Relational graph convolution: a weight per relation with per-relation degree
    normalisation, a root weight per node type, aggregated across relations.

    .. math::
        \mathbf{x}^{\prime}_i = \mathbf{W}_{\tau(i)} \mathbf{x}_i + \mathbf{b} +
        \underset{r}{\mathrm{AGG}} \sum_{j \in \mathcal{N}_r(i)}
        \frac{1}{\sqrt{d^{in}_r(i)\, d^{out}_r(j)}} \mathbf{W}_r \mathbf{x}_j

    with AGG a sum or a mean over the relations that bring node :math:`i` any message. With one
    node type, one relation, ``add_self_loops=True`` and ``root_weight=False`` it is PyG's
    :class:`~torch_geometric.nn.conv.GCNConv` (on graphs whose edges go both ways).

    The fused path (:func:`graphfuse.nn.conv.fused.gcn_conv`) runs all relations in one pass
    and pools each complete bipartite relation once per sample.

    Args:
        in_channels (int): input features per node.
        out_channels (int): output features per node.
        metadata (tuple): ``(node_types, edge_types)``, as ``HeteroData.metadata()`` gives.
        aggr (str, optional): ``"sum"`` or ``"mean"`` across relations. (default: :obj:`"sum"`)
        normalize (str, optional): edge weights within a relation: ``"sym"``, ``"mean"`` or
            ``"sum"``. (default: :obj:`"sym"`)
        root_weight (bool, optional): add :math:`\mathbf{W}_{\tau(i)} \mathbf{x}_i`.
            (default: :obj:`True`)
        add_self_loops (bool, optional): add self loops to relations within one node type.
            (default: :obj:`False`)
        bias (bool, optional): learn an additive bias. (default: :obj:`True`)
        path (str, optional): ``"auto"``, ``"fused"`` or ``"reference"`` (see
            :class:`~graphfuse.nn.conv.RelationalConv`). (default: :obj:`"auto"`)
        rules (KernelRules, optional): how the fused path runs each relation.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})` with a :class:`FlatGraph`, or
          a dict of :math:`(|\mathcal{V}_t|, F_{in})` with an ``edge_index_dict``
        - **output:** :math:`(|\mathcal{V}|, F_{out})` (or a dict of them)
    """

    def __init__(self, in_channels: int, out_channels: int, metadata: Metadata | Schema, aggr: str = "sum",
                 normalize: str = "sym", root_weight: bool = True, add_self_loops: bool = False,
                 bias: bool = True, path: str = "auto", rules: KernelRules | None = None, device=None,
                 dtype=None) -> None:
        super().__init__(in_channels, out_channels, metadata, path, rules)
        check_choice(aggr, ("sum", "mean"), "RelationalGCNConv 'aggr'")
        check_choice(normalize, NORMALIZATIONS, "RelationalGCNConv 'normalize'")
        factory = dict(device=device, dtype=dtype)
        self.aggr, self.normalize = aggr, normalize
        self.root_weight, self.add_self_loops = root_weight, add_self_loops
        self.weight = Parameter(torch.empty(self.schema.num_relations, in_channels, out_channels, **factory))
        self.root = (Parameter(torch.empty(self.schema.num_node_types, in_channels, out_channels, **factory))
                     if root_weight else None)
        self.bias = Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = math.sqrt(6.0 / (self.in_channels + self.out_channels))
        torch.nn.init.uniform_(self.weight, -bound, bound)
        if self.root is not None:
            torch.nn.init.uniform_(self.root, -bound, bound)
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def propagate(self, x: Tensor, graph: FlatGraph, return_weights: bool) -> tuple[Tensor, None]:
        edges = graph.sparse_edges(self.add_self_loops, include_dense=True)
        # x W_r for every node and relation; each edge gathers its source's, for its relation.
        projected = torch.einsum("nc,rco->nro", x, self.weight.to(x.dtype))
        messages = projected[edges.src, edges.relation] * edge_norm(graph, edges, self.normalize).unsqueeze(-1)
        per_relation = scatter(messages.to(x.dtype), edges.group_row, 0, dim_size=graph.num_group_rows)
        out = scatter(per_relation, graph.group_node, 0, dim_size=graph.num_nodes)
        if self.aggr == "mean":
            out = out / relation_counts(graph, edges).clamp_min(1).unsqueeze(-1).to(out.dtype)
        if self.root is not None:
            out = out + type_linear(x, self.root, graph)
        if self.bias is not None:
            out = out + self.bias
        return out, None

    def propagate_fused(self, x: Tensor, graph: FlatGraph, return_weights: bool) -> tuple[Tensor, None]:
        return fused.gcn_conv(self, x, graph), None

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"num_relations={self.schema.num_relations}, aggr={self.aggr!r})")
