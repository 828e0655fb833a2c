"""Relational graph convolution over a flat typed graph."""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import Parameter

from graphfuse.checks import check_choice
from graphfuse.nn.conv.aggregate import (
    NORMALIZATIONS,
    dense_scale,
    pooled_by_sample,
    received_rows,
    sparse_adjacency,
    spmm,
)
from graphfuse.nn.conv.base import RelationalConv
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

    All relations run in one pass: a sparse-matrix product aggregates every sparse relation at
    once and each node type does one matmul with its relations' weights stacked. A complete
    bipartite relation sends the same normalised sum to every destination of a sample, so it is
    pooled per sample and transformed once per sample instead of once per node.

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

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})` with a :class:`FlatGraph`, or
          a dict of :math:`(|\mathcal{V}_t|, F_{in})` with an ``edge_index_dict``
        - **output:** :math:`(|\mathcal{V}|, F_{out})` (or a dict of them)
    """

    def __init__(self, in_channels: int, out_channels: int, metadata: Metadata | Schema, aggr: str = "sum",
                 normalize: str = "sym", root_weight: bool = True, add_self_loops: bool = False,
                 bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, metadata)
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

    def propagate_flat(self, x: Tensor, graph: FlatGraph, return_weights: bool) -> tuple[Tensor, None]:
        adjacency = sparse_adjacency(graph, self.normalize, self.add_self_loops)
        neighbours = spmm(adjacency.matrix, x)
        inverse_count = self._inverse_relation_count(graph) if self.aggr == "mean" else None
        dense = self._dense_messages(x, graph)
        outs = []
        counts = graph.split(inverse_count) if inverse_count is not None else None
        sizes = [end - start for start, end in zip(adjacency.type_offsets, adjacency.type_offsets[1:], strict=False)]
        for t, (node, grouped) in enumerate(zip(graph.split(x), torch.split(neighbours, sizes), strict=True)):
            relations = adjacency.relations[t]
            grouped = grouped.view(node.size(0), len(relations) * x.size(-1))
            if inverse_count is not None:
                grouped = grouped * counts[t].unsqueeze(-1).to(grouped.dtype)
            out = grouped @ self.weight[relations].reshape(-1, self.out_channels)
            if self.root is not None:
                out = out + node @ self.root[t]
            outs.append(out)
        out = torch.cat(outs) if len(outs) > 1 else outs[0]
        if dense is not None:
            dense = dense[graph.type_sample]
            out = out + (dense * inverse_count.unsqueeze(-1) if inverse_count is not None else dense)
        if self.bias is not None:
            out = out + self.bias
        return out, None

    def _dense_messages(self, x: Tensor, graph: FlatGraph) -> Tensor | None:
        """``[T * B, out]``: the complete bipartite relations' messages per (node type, sample)."""
        blocks = graph.dense_blocks(self.add_self_loops)
        if blocks is None:
            return None
        schema = self.schema
        device = graph.device
        src_type = torch.tensor(schema.src_type, device=device)[blocks.relation]
        dst_type = torch.tensor(schema.dst_type, device=device)[blocks.relation]
        pooled = pooled_by_sample(x, graph)[src_type] * dense_scale(graph, blocks.relation, self.normalize).unsqueeze(
            -1).to(x.dtype)
        messages = torch.bmm(pooled, self.weight[blocks.relation].to(pooled.dtype))
        B = graph.num_samples
        index = (dst_type.unsqueeze(-1) * B + torch.arange(B, device=device)).flatten()
        return messages.new_zeros(schema.num_node_types * B, self.out_channels).index_add(
            0, index, messages.flatten(0, 1))

    def _inverse_relation_count(self, graph: FlatGraph) -> Tensor:
        def make() -> Tensor:
            received = received_rows(graph, self.add_self_loops).float()
            count = torch.zeros(graph.num_nodes, device=graph.device).index_add(0, graph.group_node, received)
            return count.clamp_min(1).reciprocal()

        return graph.cached(("inverse_relation_count", self.add_self_loops), make)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"num_relations={self.schema.num_relations}, aggr={self.aggr!r})")
