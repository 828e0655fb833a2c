"""Relational multi-head graph attention over a flat typed graph."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter

from graphfuse.checks import check_choice
from graphfuse.nn.conv.aggregate import received_rows, relational_attention
from graphfuse.nn.conv.base import RelationalConv
from graphfuse.nn.conv.bipartite import bipartite_gat
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

    Each node type is projected into all its outgoing relations by one matmul; attention logits
    of destinations fold into the same matmul (:math:`\mathbf{a}_{r,d}^{\top}\mathbf{W}_r` is a
    vector). Sparse relations gather per edge; complete bipartite ones run as per-sample blocks.

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

    Shapes:
        - **input:** :math:`(|\mathcal{V}|, F_{in})` with a :class:`FlatGraph`, or dicts
        - **output:** :math:`(|\mathcal{V}|, H F_{out})` (or :math:`F_{out}` without ``concat``);
          with ``return_attention_weights=True`` also ``{edge_type: (edge_index, alpha [E, H])}``
    """

    def __init__(self, in_channels: int, out_channels: int, metadata: Metadata | Schema, heads: int = 1,
                 concat: bool = True, negative_slope: float = 0.2, dropout: float = 0.0, softmax: str = "node",
                 aggr: str = "sum", add_self_loops: bool = True, root_weight: bool = False, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, metadata)
        check_choice(softmax, SOFTMAX_GROUPS, "RelationalGATConv 'softmax'")
        check_choice(aggr, ("sum", "mean"), "RelationalGATConv 'aggr'")
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

    def propagate_flat(self, x: Tensor, graph: FlatGraph, return_weights: bool) -> tuple[Tensor, dict | None]:
        schema, H, C = self.schema, self.heads, self.out_channels
        # Logits a^T W_r x are x @ (W_r a): folded into each type's one matmul as extra columns.
        weight = self.weight.view(-1, self.in_channels, H, C)
        src_logit = (weight * self.att_src.unsqueeze(1)).sum(-1)
        dst_logit = (weight * self.att_dst.unsqueeze(1)).sum(-1)
        values, src_logits, dst_logits, roots = [], [], [], []
        for t, node in enumerate(graph.split(x)):
            out_rel, in_rel = list(schema.out_relations[t]), list(schema.in_relations[t])
            weights = [self.weight[out_rel].permute(1, 0, 2).reshape(self.in_channels, -1),
                       src_logit[out_rel].permute(1, 0, 2).reshape(self.in_channels, -1),
                       dst_logit[in_rel].permute(1, 0, 2).reshape(self.in_channels, -1)]
            if self.root is not None:
                weights.append(self.root[t])
            parts = torch.split(node @ torch.cat(weights, 1), [w.size(1) for w in weights], dim=1)
            values.append(parts[0].reshape(node.size(0), len(out_rel), H, C).permute(2, 0, 1, 3).reshape(H, -1, C))
            src_logits.append(parts[1].reshape(-1, H))
            dst_logits.append(parts[2].reshape(-1, H))
            if self.root is not None:
                roots.append(parts[3])
        values = torch.cat(values, 1)  # head-first [H, num_source_rows, C]
        src_logits, dst_logits = torch.cat(src_logits), torch.cat(dst_logits)

        edges = graph.sparse_edges(self.add_self_loops)
        sparse_scores = F.leaky_relu(src_logits[edges.source_row] + dst_logits[edges.group_row], self.negative_slope)
        blocks = graph.dense_blocks(self.add_self_loops)
        dense_scores = dense_parts = None
        per_relation = self.softmax == "relation"
        if blocks is not None:
            src_part, dst_part = src_logits[blocks.src_row], dst_logits[blocks.dst_group_row]
            if return_weights or (self.training and self.dropout > 0):  # per-edge weights are needed
                dense_scores = F.leaky_relu(dst_part.permute(0, 1, 3, 2).unsqueeze(-1)
                                            + src_part.permute(0, 1, 3, 2).unsqueeze(-2), self.negative_slope)
            else:
                dense_parts = bipartite_gat(src_part.permute(3, 0, 1, 2), dst_part.permute(3, 0, 1, 2),
                                            values, blocks.src_row, blocks.src_valid, blocks.dst_valid,
                                            self.negative_slope)
        out, weights = relational_attention(graph, values, sparse_scores, dense_scores, self.add_self_loops,
                                            per_relation, self.dropout, self.training, return_weights, dense_parts)
        if per_relation:
            out = self._combine_relations(out, graph)
        out = out.reshape(-1, H * C) if self.concat else out.mean(1)
        if self.root is not None:
            root = torch.cat(roots)
            out = out + (root if self.concat else root.view(-1, H, C).mean(1))
        if self.bias is not None:
            out = out + self.bias
        return out, weights

    def _combine_relations(self, grouped: Tensor, graph: FlatGraph) -> Tensor:
        out = grouped.new_zeros(graph.num_nodes, *grouped.shape[1:]).index_add(0, graph.group_node, grouped)
        if self.aggr == "mean":
            received = received_rows(graph, self.add_self_loops).float()
            count = torch.zeros(graph.num_nodes, device=grouped.device).index_add(0, graph.group_node, received)
            out = out / count.clamp_min(1).view(-1, 1, 1).to(out.dtype)
        return out

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, heads={self.heads}, "
                f"num_relations={self.schema.num_relations}, softmax={self.softmax!r})")

