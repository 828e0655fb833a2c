"""Dynamic k-nearest-neighbour cross-modal edges, computed from the current node embeddings."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from graphfuse.checks import check_int
from graphfuse.nn.flat import FlatGraph, Metadata, Schema
from graphfuse.typing import EdgeType


class DynamicKNNEdges(torch.nn.Module):
    r"""Replaces cross-modal relations by k-nearest-neighbour edges from the current embeddings.

    For every relation :math:`s \to t` it joins each node :math:`i` of type :math:`t` to the
    :math:`k` nodes :math:`j` of type :math:`s` *of the same sample* with the largest cosine
    similarity :math:`\cos(\mathbf{h}_i, \mathbf{h}_j)` (all of them when the sample has fewer
    than :math:`k`). Samples never exchange edges. The choice of neighbours is discrete and
    carries no gradient; the messages along the edges do.

    Similarities are computed per sample on padded ``[B, L, L]`` blocks, all relations at once.

    Args:
        k (int): neighbours per destination node and relation.
        metadata (tuple): ``(node_types, edge_types)`` of the layers that use the edges.
        relations (Sequence[tuple], optional): the relations to replace; default: every relation
            between two different node types.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F)`, a :class:`FlatGraph`
        - **output:** a :class:`FlatGraph` with the same nodes and the new edges
    """

    def __init__(self, k: int, metadata: Metadata | Schema, relations: Sequence[EdgeType] | None = None) -> None:
        super().__init__()
        check_int(k, "DynamicKNNEdges 'k'")
        self.k = k
        self.schema = Schema.from_metadata(metadata)
        if relations is None:
            relations = [e for e in self.schema.edge_types if e[0] != e[2]]
        relations = [tuple(e) for e in relations]
        unknown = [e for e in relations if e not in self.schema.edge_types]
        if unknown:
            raise ValueError(f"DynamicKNNEdges relations {unknown} are not among the edge types "
                             f"{list(self.schema.edge_types)}")
        if not relations:
            raise ValueError("DynamicKNNEdges needs at least one relation to replace (the metadata has no "
                             "relation between two node types)")
        self.relations = relations
        self.relation_index = [self.schema.edge_types.index(e) for e in relations]
        # Pair each relation with its reverse among the replaced ones (if any).
        self.pair_first: list[int] = []
        self.pair_of: list[int] = []
        self.pair_transposed: list[bool] = []
        for i, (src, _, dst) in enumerate(relations):
            reverse = next((self.pair_first.index(j) for j in self.pair_first
                            if (relations[j][0], relations[j][2]) == (dst, src)), None)
            if reverse is None or self.pair_of.count(reverse) > 1:
                self.pair_first.append(i)
                self.pair_of.append(len(self.pair_first) - 1)
                self.pair_transposed.append(False)
            else:
                self.pair_of.append(reverse)
                self.pair_transposed.append(True)

    @torch.no_grad()
    def edges(self, x: Tensor, graph: FlatGraph) -> dict[EdgeType, Tensor]:
        """The new ``edge_index`` (local indices) of each replaced relation."""
        schema = self.schema
        device = x.device
        src_type = torch.tensor([schema.src_type[r] for r in self.relation_index], device=device)
        dst_type = torch.tensor([schema.dst_type[r] for r in self.relation_index], device=device)
        table = graph.slot_table
        src_node, dst_node = table[src_type], table[dst_type]
        unit = F.normalize(x.float(), dim=-1)
        # A relation and its reverse share one similarity block: rows are the first relation's
        # destinations, so the reverse takes its top-k down the columns.
        first = torch.tensor(self.pair_first, device=device)
        pair_dst, pair_src = table[dst_type[first]], table[src_type[first]]
        pairs = torch.einsum("pbic,pbjc->pbij", unit[pair_dst.clamp_min(0)], unit[pair_src.clamp_min(0)])
        # Padding slots never become neighbours. One in-place fill serves both directions: a masked
        # padding row or column only changes results for padding destinations, which are dropped.
        # Whether there is any padding is known without reading the table (a host sync).
        types = {schema.src_type[self.relation_index[i]] for i in self.pair_first} | {
            schema.dst_type[self.relation_index[i]] for i in self.pair_first}
        if any(graph.padded[t] for t in types):
            pairs.masked_fill_((pair_dst < 0).unsqueeze(3) | (pair_src < 0).unsqueeze(2), float("-inf"))
        k = min(self.k, pairs.size(-1))
        forward, backward = pairs.topk(k, dim=-1), pairs.topk(k, dim=-2)
        best = torch.stack([backward.values[p].transpose(-1, -2) if flipped else forward.values[p]
                            for p, flipped in zip(self.pair_of, self.pair_transposed, strict=True)])
        chosen = torch.stack([backward.indices[p].transpose(-1, -2) if flipped else forward.indices[p]
                              for p, flipped in zip(self.pair_of, self.pair_transposed, strict=True)])
        keep = torch.isfinite(best) & (dst_node >= 0).unsqueeze(-1)
        src = torch.gather(src_node.unsqueeze(2).expand(-1, -1, dst_node.size(-1), -1), 3, chosen)
        dst = dst_node.unsqueeze(-1).expand_as(src)
        offsets = torch.tensor(graph.offsets[:-1], device=device)
        result = {}
        for i, edge_type in enumerate(self.relations):
            mask = keep[i]
            result[edge_type] = torch.stack([src[i][mask] - offsets[src_type[i]], dst[i][mask] - offsets[dst_type[i]]])
        return result

    def forward(self, x: Tensor, graph: FlatGraph) -> FlatGraph:
        if graph.schema != self.schema:
            raise ValueError(f"DynamicKNNEdges was built for edge types {list(self.schema.edge_types)} but the graph "
                             f"has {list(graph.schema.edge_types)}")
        return graph.with_edges(self.edges(x, graph))

    def extra_repr(self) -> str:
        return f"k={self.k}, relations={self.relations}"
