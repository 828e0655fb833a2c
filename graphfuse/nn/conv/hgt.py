"""Heterogeneous graph transformer layer over a flat typed graph."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter

from graphfuse.checks import check_choice
from graphfuse.nn.conv.aggregate import relational_attention
from graphfuse.nn.conv.base import RelationalConv
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

    Shapes:
        - **input:** :math:`(|\mathcal{V}|, F_{in})` with a :class:`FlatGraph`, or dicts
        - **output:** :math:`(|\mathcal{V}|, F_{out})`; with ``return_attention_weights=True``
          also ``{edge_type: (edge_index, alpha [E, H])}``
    """

    def __init__(self, in_channels: int, out_channels: int, metadata: Metadata | Schema, heads: int = 1,
                 softmax: str = "node", dropout: float = 0.0, device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, metadata)
        check_choice(softmax, SOFTMAX_GROUPS, "RelationalHGTConv 'softmax'")
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

    def propagate_flat(self, x: Tensor, graph: FlatGraph, return_weights: bool) -> tuple[Tensor, dict | None]:
        schema, H = self.schema, self.heads
        D = self.out_channels // H
        queries, keys, values = [], [], []
        for t, node in enumerate(graph.split(x)):
            out_rel = list(schema.out_relations[t])
            k, q, v = (node @ self.kqv_weight[t] + self.kqv_bias[t]).view(-1, 3, H, D).unbind(1)
            queries.append(q)
            # Relation transforms per head, priors folded into the keys: score = q . (k W_att mu) / sqrt(D).
            key_rel = self.k_rel[out_rel] * self.p_rel[out_rel].view(len(out_rel), H, 1, 1)
            keys.append(torch.einsum("nhd,rhde->nrhe", k, key_rel.to(k.dtype)).reshape(-1, H, D))
            values.append(torch.einsum("nhd,rhde->nrhe", v, self.v_rel[out_rel].to(v.dtype)).reshape(-1, H, D))
        queries, keys, values = (torch.cat(parts) for parts in (queries, keys, values))
        scale = 1.0 / math.sqrt(D)
        edges = graph.sparse_edges()
        sparse_scores = (queries[edges.dst] * keys[edges.source_row]).sum(-1) * scale
        blocks = graph.dense_blocks()
        dense_scores = None
        if blocks is not None:
            dense_scores = torch.einsum("rbihd,rbjhd->rbhij", queries[blocks.dst_node], keys[blocks.src_row]) * scale
        per_relation = self.softmax == "relation"
        out, weights = relational_attention(graph, values.permute(1, 0, 2), sparse_scores, dense_scores, False,
                                            per_relation, self.dropout, self.training, return_weights)
        if per_relation:
            out = out.new_zeros(graph.num_nodes, H, D).index_add(0, graph.group_node, out)
        out = F.gelu(out.reshape(-1, self.out_channels))
        outs = [part @ self.out_weight[t] + self.out_bias[t] for t, part in enumerate(graph.split(out))]
        out = torch.cat(outs) if len(outs) > 1 else outs[0]
        if self.in_channels == self.out_channels:
            gate = torch.sigmoid(self.skip)[graph.node_type].unsqueeze(-1)
            out = gate * out + (1 - gate) * x
        return out, weights

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, heads={self.heads}, "
                f"num_relations={self.schema.num_relations}, softmax={self.softmax!r})")
