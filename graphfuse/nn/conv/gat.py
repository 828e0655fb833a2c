"""Relational multi-head graph attention over a flat typed graph."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.utils import scatter, softmax

from graphfuse.checks import check_choice, check_probability
from graphfuse.nn.conv import fused
from graphfuse.nn.conv.base import RelationalConv, relation_counts, type_linear
from graphfuse.nn.conv.fused.rules import KernelRules
from graphfuse.nn.flat import FlatGraph, Metadata, Schema

SOFTMAX_GROUPS = ("node", "relation")


class RelationalGATConv(RelationalConv):
    r"""Relational graph attention with multiple heads: GAT scores with a projection and
    attention vectors per relation.

    .. math::
        \alpha_{ij}^{r} = \underset{j}{\mathrm{softmax}}\left(\mathrm{LeakyReLU}\left(
        \mathbf{a}_{r,s}^{\top} \mathbf{W}_r \mathbf{x}_j + \mathbf{a}_{r,d}^{\top}
        \mathbf{W}_r \mathbf{x}_i\right)\right), \qquad
        \mathbf{x}^{\prime}_i = \mathbf{b} + \Big\Vert_{h} \sum_{r} \sum_{j \in \mathcal{N}_r(i)}
        \alpha_{ij}^{r,h} \mathbf{W}_r^{h} \mathbf{x}_j

    The softmax runs over all incoming edges of a node across relations (``softmax="node"``,
    type-aware) or within each relation (``softmax="relation"``, then summed or averaged over
    relations). With one relation and ``root_weight=False`` it is PyG's
    :class:`~torch_geometric.nn.conv.GATConv`.

    The fused path (:func:`graphfuse.nn.conv.fused.gat_conv`) folds the attention logits into
    each node type's projection and runs complete bipartite relations as per-sample blocks.

    Args:
        in_channels (int): input features per node.
        out_channels (int): features per head.
        metadata (tuple): ``(node_types, edge_types)``.
        heads (int, optional): attention heads. (default: :obj:`1`)
        concat (bool, optional): concatenate heads (else average them). (default: :obj:`True`)
        negative_slope (float, optional): LeakyReLU slope. (default: :obj:`0.2`)
        dropout (float, optional): dropout of attention weights. (default: :obj:`0.0`)
        softmax (str, optional): ``"node"`` or ``"relation"``. (default: :obj:`"node"`)
        aggr (str, optional): ``"sum"`` or ``"mean"`` across relations with ``softmax="relation"``.
            (default: :obj:`"sum"`)
        add_self_loops (bool, optional): add self loops to relations within one node type.
            (default: :obj:`True`)
        root_weight (bool, optional): add a per-node-type projection of the node itself.
            (default: :obj:`False`)
        bias (bool, optional): learn an additive bias. (default: :obj:`True`)
        path (str, optional): ``"auto"``, ``"fused"`` or ``"reference"`` (see
            :class:`~graphfuse.nn.conv.RelationalConv`). (default: :obj:`"auto"`)
        rules (KernelRules, optional): how the fused path runs each relation.

    Shapes:
        - **input:** :math:`(|\mathcal{V}|, F_{in})` with a :class:`FlatGraph`, or dicts
        - **output:** :math:`(|\mathcal{V}|, H F_{out})` (or :math:`F_{out}` without ``concat``);
          with ``return_attention_weights=True`` also ``{edge_type: (edge_index, alpha [E, H])}``
    """

    def __init__(self, in_channels: int, out_channels: int, metadata: Metadata | Schema, heads: int = 1,
                 concat: bool = True, negative_slope: float = 0.2, dropout: float = 0.0, softmax: str = "node",
                 aggr: str = "sum", add_self_loops: bool = True, root_weight: bool = False, bias: bool = True,
                 path: str = "auto", rules: KernelRules | None = None, device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, metadata, path, rules)
        check_choice(softmax, SOFTMAX_GROUPS, "RelationalGATConv 'softmax'")
        check_choice(aggr, ("sum", "mean"), "RelationalGATConv 'aggr'")
        dropout = check_probability(dropout, "RelationalGATConv 'dropout'")
        if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1:
            raise ValueError(f"'RelationalGATConv' needs a positive integer 'heads', got {heads!r}")
        factory = dict(device=device, dtype=dtype)
        self.heads, self.concat, self.negative_slope, self.dropout = heads, concat, negative_slope, dropout
        self.softmax, self.aggr = softmax, aggr
        self.add_self_loops, self.root_weight = add_self_loops, root_weight
        R, T = self.schema.num_relations, self.schema.num_node_types
        self.weight = Parameter(torch.empty(R, in_channels, heads * out_channels, **factory))
        self.att_src = Parameter(torch.empty(R, heads, out_channels, **factory))
        self.att_dst = Parameter(torch.empty(R, heads, out_channels, **factory))
        self.root = Parameter(torch.empty(T, in_channels, heads * out_channels, **factory)) if root_weight else None
        width = heads * out_channels if concat else out_channels
        self.bias = Parameter(torch.empty(width, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = math.sqrt(6.0 / (self.in_channels + self.heads * self.out_channels))
        torch.nn.init.uniform_(self.weight, -bound, bound)
        att_bound = math.sqrt(6.0 / (1 + self.out_channels))
        torch.nn.init.uniform_(self.att_src, -att_bound, att_bound)
        torch.nn.init.uniform_(self.att_dst, -att_bound, att_bound)
        if self.root is not None:
            torch.nn.init.uniform_(self.root, -bound, bound)
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def propagate(self, x: Tensor, graph: FlatGraph, return_weights: bool) -> tuple[Tensor, dict | None]:
        H, C = self.heads, self.out_channels
        edges = graph.sparse_edges(self.add_self_loops, include_dense=True)
        projected = torch.einsum("nc,rco->nro", x, self.weight.to(x.dtype)).view(x.size(0), -1, H, C)
        x_j = projected[edges.src, edges.relation]  # [E, H, C]: each source by its edge's relation
        x_i = projected[edges.dst, edges.relation]
        alpha = (x_j * self.att_src[edges.relation]).sum(-1) + (x_i * self.att_dst[edges.relation]).sum(-1)
        alpha = F.leaky_relu(alpha, self.negative_slope)
        per_relation = self.softmax == "relation"
        group, num_groups = (edges.group_row, graph.num_group_rows) if per_relation else (edges.dst, graph.num_nodes)
        alpha = softmax(alpha, group, num_nodes=num_groups)
        kept = F.dropout(alpha, p=self.dropout, training=self.training)
        out = scatter(x_j * kept.unsqueeze(-1).to(x_j.dtype), group, 0, dim_size=num_groups)
        if per_relation:
            out = scatter(out, graph.group_node, 0, dim_size=graph.num_nodes)
            if self.aggr == "mean":
                out = out / relation_counts(graph, edges).clamp_min(1).view(-1, 1, 1).to(out.dtype)
        out = out.reshape(-1, H * C) if self.concat else out.mean(1)
        if self.root is not None:
            root = type_linear(x, self.root, graph)
            out = out + (root if self.concat else root.view(-1, H, C).mean(1))
        if self.bias is not None:
            out = out + self.bias
        return out, graph.by_relation(edges, alpha) if return_weights else None

    def propagate_fused(self, x: Tensor, graph: FlatGraph, return_weights: bool) -> tuple[Tensor, dict | None]:
        return fused.gat_conv(self, x, graph, return_weights)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, heads={self.heads}, "
                f"num_relations={self.schema.num_relations}, softmax={self.softmax!r})")

