"""Gated relational fusion over a flat typed graph."""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import Parameter

from graphfuse.checks import check_choice
from graphfuse.nn.conv.aggregate import NORMALIZATIONS, relation_aggregate
from graphfuse.nn.conv.base import RelationalConv
from graphfuse.nn.flat import FlatGraph, Metadata, Schema


class GatedRelationalConv(RelationalConv):
    r"""Gated fusion: each relation's aggregated message enters through a learned sigmoid gate
    of the destination node.

    .. math::
        \mathbf{m}_{r,i} = \mathbf{W}_r \,\underset{j \in \mathcal{N}_r(i)}{\mathrm{mean}}\,
        \mathbf{x}_j, \qquad
        \mathbf{g}_{r,i} = \sigma\left(\mathbf{U}_r [\mathbf{x}_i \,\Vert\, \mathbf{m}_{r,i}]
        + \mathbf{c}_r\right), \qquad
        \mathbf{x}^{\prime}_i = \mathbf{W}_{\tau(i)} \mathbf{x}_i + \mathbf{b} +
        \sum_r \mathbf{g}_{r,i} \odot \mathbf{m}_{r,i}

    A relation that brings node :math:`i` no edges contributes nothing. Neighbour means come from
    one sparse-matrix product for all sparse relations and per-sample pooling for complete
    bipartite ones.

    Args:
        in_channels (int): input features per node.
        out_channels (int): output features per node.
        metadata (tuple): ``(node_types, edge_types)``.
        normalize (str, optional): neighbour weights within a relation: ``"mean"``, ``"sym"`` or
            ``"sum"``. (default: :obj:`"mean"`)
        root_weight (bool, optional): add :math:`\mathbf{W}_{\tau(i)} \mathbf{x}_i`.
            (default: :obj:`True`)
        bias (bool, optional): learn an additive bias. (default: :obj:`True`)

    Shapes:
        - **input:** :math:`(|\mathcal{V}|, F_{in})` with a :class:`FlatGraph`, or dicts
        - **output:** :math:`(|\mathcal{V}|, F_{out})`
    """

    def __init__(self, in_channels: int, out_channels: int, metadata: Metadata | Schema, normalize: str = "mean",
                 root_weight: bool = True, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, metadata)
        check_choice(normalize, NORMALIZATIONS, "GatedRelationalConv 'normalize'")
        factory = dict(device=device, dtype=dtype)
        self.normalize, self.root_weight = normalize, root_weight
        R, T = self.schema.num_relations, self.schema.num_node_types
        self.weight = Parameter(torch.empty(R, in_channels, out_channels, **factory))
        self.gate_node = Parameter(torch.empty(R, in_channels, out_channels, **factory))
        self.gate_message = Parameter(torch.empty(R, out_channels, out_channels, **factory))
        self.gate_bias = Parameter(torch.empty(R, out_channels, **factory))
        self.root = Parameter(torch.empty(T, in_channels, out_channels, **factory)) if root_weight else None
        self.bias = Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = math.sqrt(6.0 / (self.in_channels + self.out_channels))
        for weight in (self.weight, self.gate_node, self.root):
            if weight is not None:
                torch.nn.init.uniform_(weight, -bound, bound)
        gate_bound = math.sqrt(6.0 / (2 * self.out_channels))
        torch.nn.init.uniform_(self.gate_message, -gate_bound, gate_bound)
        torch.nn.init.zeros_(self.gate_bias)
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def propagate_flat(self, x: Tensor, graph: FlatGraph, return_weights: bool) -> tuple[Tensor, None]:
        schema = self.schema
        means, received = relation_aggregate(x, graph, self.normalize)
        outs = []
        for t, node in enumerate(graph.split(x)):
            in_rel = list(schema.in_relations[t])
            start, n = graph.group_row_offsets[t], node.size(0)
            parts = [node @ self.root[t]] if self.root is not None else []
            if in_rel:
                grouped = means[start:start + n * len(in_rel)].view(n, len(in_rel), x.size(-1))
                messages = torch.einsum("nrc,rcd->nrd", grouped, self.weight[in_rel].to(grouped.dtype))
                gate_input = torch.einsum("nc,rcd->nrd", node, self.gate_node[in_rel].to(node.dtype))
                gates = torch.sigmoid(gate_input + torch.einsum("nrc,rcd->nrd", messages,
                                                                self.gate_message[in_rel].to(messages.dtype))
                                      + self.gate_bias[in_rel])
                mask = received[start:start + n * len(in_rel)].view(n, len(in_rel), 1)
                parts.append((gates * messages * mask).sum(1))
            outs.append(sum(parts) if parts else node.new_zeros(n, self.out_channels))
        out = torch.cat(outs) if len(outs) > 1 else outs[0]
        if self.bias is not None:
            out = out + self.bias
        return out, None
