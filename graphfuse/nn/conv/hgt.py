"""Heterogeneous graph transformer layer over a flat typed graph."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.utils import scatter, softmax

from graphfuse.checks import check_choice, check_probability
from graphfuse.nn.conv import fused
from graphfuse.nn.conv.base import RelationalConv, type_linear
from graphfuse.nn.conv.fused.rules import KernelRules
from graphfuse.nn.conv.gat import SOFTMAX_GROUPS
from graphfuse.nn.flat import FlatGraph, Metadata, Schema


class RelationalHGTConv(RelationalConv):
    r"""The heterogeneous graph transformer layer (Hu et al., 2020): keys, queries and values per
    node type, attention and message matrices and a prior per relation.

    .. math::
        \alpha_{ij} = \underset{j}{\mathrm{softmax}}\left(\frac{\mu_{r,h}}{\sqrt{D}}
        \mathbf{q}_i^{h\top} \mathbf{W}^{att}_{r,h} \mathbf{k}_j^{h}\right), \qquad
        \mathbf{x}^{\prime}_i = \beta_{\tau(i)} \mathbf{W}^{out}_{\tau(i)}
        \mathrm{GELU}\Big(\Big\Vert_h \sum_{j} \alpha_{ij}^{h}
        \mathbf{W}^{msg}_{r,h} \mathbf{v}_j^{h}\Big) + (1 - \beta_{\tau(i)}) \mathbf{x}_i

    with :math:`\beta_t = \sigma(s_t)` a learned skip gate (only when input and output sizes
    match). The softmax runs over all incoming edges of a node (``softmax="node"``, as PyG's
    :class:`~torch_geometric.nn.conv.HGTConv`, which it equals on shared weights) or within each
    relation, summed over relations (``softmax="relation"``).

    Args:
        in_channels (int): input features per node.
        out_channels (int): output features per node (split over the heads).
        metadata (tuple): ``(node_types, edge_types)``.
        heads (int, optional): attention heads. (default: :obj:`1`)
        softmax (str, optional): ``"node"`` or ``"relation"``. (default: :obj:`"node"`)
        dropout (float, optional): dropout of attention weights. (default: :obj:`0.0`)
        path (str, optional): ``"auto"``, ``"fused"`` or ``"reference"`` (see
            :class:`~graphfuse.nn.conv.RelationalConv`). (default: :obj:`"auto"`)
        rules (KernelRules, optional): how the fused path (:func:`graphfuse.nn.conv.fused.hgt_conv`)
            runs each relation.

    Shapes:
        - **input:** :math:`(|\mathcal{V}|, F_{in})` with a :class:`FlatGraph`, or dicts
        - **output:** :math:`(|\mathcal{V}|, F_{out})`; with ``return_attention_weights=True``
          also ``{edge_type: (edge_index, alpha [E, H])}``
    """

    def __init__(self, in_channels: int, out_channels: int, metadata: Metadata | Schema, heads: int = 1,
                 softmax: str = "node", dropout: float = 0.0, path: str = "auto", rules: KernelRules | None = None,
                 device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, metadata, path, rules)
        check_choice(softmax, SOFTMAX_GROUPS, "RelationalHGTConv 'softmax'")
        dropout = check_probability(dropout, "RelationalHGTConv 'dropout'")
        if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1 or out_channels % heads:
            raise ValueError(f"'RelationalHGTConv' needs 'out_channels' ({out_channels}) divisible by a positive "
                             f"integer 'heads', got {heads!r}")
        factory = dict(device=device, dtype=dtype)
        self.heads, self.softmax, self.dropout = heads, softmax, dropout
        T, R, D = self.schema.num_node_types, self.schema.num_relations, out_channels // heads
        self.kqv_weight = Parameter(torch.empty(T, in_channels, 3 * out_channels, **factory))
        self.kqv_bias = Parameter(torch.empty(T, 3 * out_channels, **factory))
        self.k_rel = Parameter(torch.empty(R, heads, D, D, **factory))
        self.v_rel = Parameter(torch.empty(R, heads, D, D, **factory))
        self.p_rel = Parameter(torch.empty(R, heads, **factory))
        self.out_weight = Parameter(torch.empty(T, out_channels, out_channels, **factory))
        self.out_bias = Parameter(torch.empty(T, out_channels, **factory))
        self.skip = Parameter(torch.empty(T, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for weight, bias, fan_in in ((self.kqv_weight, self.kqv_bias, self.in_channels),
                                     (self.out_weight, self.out_bias, self.out_channels)):
            bound = 1.0 / math.sqrt(fan_in)
            torch.nn.init.uniform_(weight, -bound, bound)
            torch.nn.init.uniform_(bias, -bound, bound)
        D = self.out_channels // self.heads
        for weight in (self.k_rel, self.v_rel):
            torch.nn.init.uniform_(weight, -1.0 / math.sqrt(D), 1.0 / math.sqrt(D))
        torch.nn.init.ones_(self.p_rel)
        torch.nn.init.ones_(self.skip)

    def propagate(self, x: Tensor, graph: FlatGraph, return_weights: bool) -> tuple[Tensor, dict | None]:
        H, D = self.heads, self.out_channels // self.heads
        kqv = type_linear(x, self.kqv_weight, graph) + self.kqv_bias[graph.node_type]
        k, q, v = kqv.view(-1, 3, H, D).unbind(1)
        edges = graph.sparse_edges(include_dense=True)
        # Keys and values of every node for every relation; each edge gathers its source's.
        k_j = torch.einsum("nhd,rhde->nrhe", k, self.k_rel.to(k.dtype))[edges.src, edges.relation]
        v_j = torch.einsum("nhd,rhde->nrhe", v, self.v_rel.to(v.dtype))[edges.src, edges.relation]
        alpha = (q[edges.dst] * k_j).sum(-1) * self.p_rel[edges.relation] / math.sqrt(D)
        per_relation = self.softmax == "relation"
        group, num_groups = (edges.group_row, graph.num_group_rows) if per_relation else (edges.dst, graph.num_nodes)
        alpha = softmax(alpha, group, num_nodes=num_groups)
        kept = F.dropout(alpha, p=self.dropout, training=self.training)
        out = scatter(v_j * kept.unsqueeze(-1).to(v_j.dtype), group, 0, dim_size=num_groups)
        if per_relation:
            out = scatter(out, graph.group_node, 0, dim_size=graph.num_nodes)
        out = F.gelu(out.reshape(-1, self.out_channels))
        out = type_linear(out, self.out_weight, graph) + self.out_bias[graph.node_type]
        if self.in_channels == self.out_channels:
            gate = torch.sigmoid(self.skip)[graph.node_type].unsqueeze(-1)
            out = gate * out + (1 - gate) * x
        return out, graph.by_relation(edges, alpha) if return_weights else None

    def propagate_fused(self, x: Tensor, graph: FlatGraph, return_weights: bool) -> tuple[Tensor, dict | None]:
        return fused.hgt_conv(self, x, graph, return_weights)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, heads={self.heads}, "
                f"num_relations={self.schema.num_relations}, softmax={self.softmax!r})")
