"""Gated relational fusion over a flat typed graph."""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.utils import scatter

from graphfuse.checks import check_choice
from graphfuse.nn.conv import fused
from graphfuse.nn.conv.base import NORMALIZATIONS, RelationalConv, edge_norm, type_linear
from graphfuse.nn.conv.fused.rules import KernelRules
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

    A relation that brings node :math:`i` no edges contributes nothing. The fused path
    (:func:`graphfuse.nn.conv.fused.gated_conv`) takes the neighbour means from one sparse-matrix
    product for all sparse relations and per-sample pooling for complete bipartite ones.

    Args:
        in_channels (int): input features per node.
        out_channels (int): output features per node.
        metadata (tuple): ``(node_types, edge_types)``.
        normalize (str, optional): neighbour weights within a relation: ``"mean"``, ``"sym"`` or
            ``"sum"``. (default: :obj:`"mean"`)
        root_weight (bool, optional): add :math:`\mathbf{W}_{\tau(i)} \mathbf{x}_i`.
            (default: :obj:`True`)
        bias (bool, optional): learn an additive bias. (default: :obj:`True`)
        path (str, optional): ``"auto"``, ``"fused"`` or ``"reference"`` (see
            :class:`~graphfuse.nn.conv.RelationalConv`). (default: :obj:`"auto"`)
        rules (KernelRules, optional): how the fused path runs each relation.

    Shapes:
        - **input:** :math:`(|\mathcal{V}|, F_{in})` with a :class:`FlatGraph`, or dicts
        - **output:** :math:`(|\mathcal{V}|, F_{out})`
    """

    def __init__(self, in_channels: int, out_channels: int, metadata: Metadata | Schema, normalize: str = "mean",
                 root_weight: bool = True, bias: bool = True, path: str = "auto", rules: KernelRules | None = None,
                 device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, metadata, path, rules)
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

    def propagate(self, x: Tensor, graph: FlatGraph, return_weights: bool) -> tuple[Tensor, None]:
        edges = graph.sparse_edges(include_dense=True)
        # Per relation r and node i, m_{r,i} = W_r mean_j x_j: each edge gathers x_j W_r.
        projected = torch.einsum("nc,rco->nro", x, self.weight.to(x.dtype))
        weighted = projected[edges.src, edges.relation] * edge_norm(graph, edges, self.normalize).unsqueeze(-1)
        messages = scatter(weighted.to(x.dtype), edges.group_row, 0, dim_size=graph.num_group_rows)
        node, relation = graph.group_node, graph.group_relation
        gate_node = torch.einsum("nc,rco->nro", x, self.gate_node.to(x.dtype))[node, relation]
        gate_message = torch.einsum("go,rod->grd", messages, self.gate_message.to(messages.dtype))
        gate_message = gate_message[torch.arange(messages.size(0), device=x.device), relation]
        gates = torch.sigmoid(gate_node + gate_message + self.gate_bias[relation])
        out = scatter(gates * messages, node, 0, dim_size=graph.num_nodes)  # no edges: m = 0, nothing added
        if self.root is not None:
            out = out + type_linear(x, self.root, graph)
        if self.bias is not None:
            out = out + self.bias
        return out, None

    def propagate_fused(self, x: Tensor, graph: FlatGraph, return_weights: bool) -> tuple[Tensor, None]:
        return fused.gated_conv(self, x, graph), None
