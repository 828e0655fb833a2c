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

    Similarities are computed per sample on padded ``[B, L_dst, L_src]`` blocks, one per relation and
    its reverse, each as long as the most nodes a sample has of its two node types.

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
        """The new ``edge_index`` (local indices) of each replaced relation, each destination's
        neighbours together, destinations in increasing order."""
        schema = self.schema
        unit = F.normalize(x.float(), dim=-1)
        # A relation and its reverse share one similarity block: rows are the first relation's
        # destinations, so the reverse takes its top-k down the columns. Each block is as long as
        # its own two node types (a long recording beside a few words: [B, frames, words]).
        blocks = []
        for i in self.pair_first:
            r = self.relation_index[i]
            dst_type, src_type = schema.dst_type[r], schema.src_type[r]
            similarity = torch.einsum("bic,bjc->bij", _blocks(unit, graph, dst_type), _blocks(unit, graph, src_type))
            # Padding slots never become neighbours; whether there is any is known without reading
            # the table (a host sync).
            if not (_without_padding(graph, dst_type) and _without_padding(graph, src_type)):
                dst_node, src_node = _slots(graph, dst_type), _slots(graph, src_type)
                similarity.masked_fill_((dst_node < 0).unsqueeze(2) | (src_node < 0).unsqueeze(1), float("-inf"))
            blocks.append(similarity)
        result = {}
        for i, edge_type in enumerate(self.relations):
            similarity = blocks[self.pair_of[i]]
            if self.pair_transposed[i]:
                similarity = similarity.transpose(1, 2)
            best, chosen = top_k(similarity, min(self.k, similarity.size(-1)))
            r = self.relation_index[i]
            src_type, dst_type = schema.src_type[r], schema.dst_type[r]
            if _without_padding(graph, src_type) and _without_padding(graph, dst_type):
                # Every slot is a node, every choice a neighbour: slot b, i is local node b * L + i.
                B, L, k = chosen.shape
                edge_index = chosen.new_empty(2, B, L, k)
                torch.add(chosen, torch.arange(0, B * similarity.size(-1), similarity.size(-1),
                                               device=chosen.device).view(B, 1, 1), out=edge_index[0])
                edge_index[1] = torch.arange(B * L, device=chosen.device).view(B, L, 1)
                result[edge_type] = edge_index.view(2, -1)
                continue
            dst_node, src_node = _slots(graph, dst_type), _slots(graph, src_type)
            src = torch.gather(src_node, 1, chosen.flatten(1)).view_as(chosen)
            dst = dst_node.unsqueeze(-1).expand_as(src)
            keep = torch.isfinite(best) & (dst_node >= 0).unsqueeze(-1)
            result[edge_type] = torch.stack([src[keep] - graph.offsets[src_type], dst[keep] - graph.offsets[dst_type]])
        return result

    def forward(self, x: Tensor, graph: FlatGraph) -> FlatGraph:
        if graph.schema != self.schema:
            raise ValueError(f"DynamicKNNEdges was built for edge types {list(self.schema.edge_types)} but the graph "
                             f"has {list(graph.schema.edge_types)}")
        return graph.with_edges(self.edges(x, graph))

    def extra_repr(self) -> str:
        return f"k={self.k}, relations={self.relations}"


def _slots(graph: FlatGraph, node_type: int) -> Tensor:
    """``[B, L]``: the flat node in each of a node type's per-sample slots, ``-1`` for padding
    (``L`` the most nodes of that type in a sample)."""
    return graph.slot_table[node_type, :, :max(1, graph.type_block_size[node_type])]


def _blocks(unit: Tensor, graph: FlatGraph, node_type: int) -> Tensor:
    """``[B, L, C]``: a node type's rows of ``unit`` per sample slot (padding slots hold some row,
    for the caller to mask): a view when no sample has padding."""
    if _without_padding(graph, node_type):
        start, end = graph.offsets[node_type], graph.offsets[node_type + 1]
        return unit[start:end].view(graph.num_samples, -1, unit.size(-1))
    return unit[_slots(graph, node_type).clamp_min(0)]


def _without_padding(graph: FlatGraph, node_type: int) -> bool:
    """Whether every sample has as many nodes of ``node_type`` as the longest (from the layout: no
    host sync)."""
    size = graph.type_block_size[node_type]
    counts = graph.layout.counts.get(graph.schema.node_types[node_type], ())
    return size > 0 and len(counts) == graph.num_samples and all(c == size for c in counts)


def top_k(scores: Tensor, k: int, chunk: int = 4) -> tuple[Tensor, Tensor]:
    """``scores.topk(k)`` along the last dimension as a set (in no particular order; which of
    equal entries, as with torch.topk, is not specified), exactly, in two narrower passes where the
    rows are long: the ``k`` largest entries of a row lie in the ``k`` chunks (of ``chunk``
    entries) with the largest maxima, so the chunks' maxima pick ``k`` chunks and those
    ``k * chunk`` candidates the entries. Each pass works on ``n / chunk`` or ``k * chunk``
    entries per row instead of ``n``.

    ``scores`` may be a transposed block (as the reverse relation reads a similarity block down
    its columns): it is read in place."""
    n = scores.size(-1)
    if n % chunk or n < 4 * k * chunk:
        return scores.topk(k, dim=-1, sorted=False)
    width = n // chunk
    # Chunk c holds entries c, c + width, c + 2 width, ...: its maximum is an elementwise maximum
    # of `chunk` slices, contiguous in either layout.
    transposed = scores.stride(-2) == 1 and scores.stride(-1) != 1  # the rows are contiguous
    if transposed:
        maxima = scores.transpose(-1, -2).unflatten(-2, (chunk, width)).amax(-3).transpose(-1, -2)
    else:
        maxima = scores.unflatten(-1, (chunk, width)).amax(-2)
    offsets = width * torch.arange(chunk, device=scores.device).view(chunk, 1, 1)
    candidates = (_largest(maxima, k).unsqueeze(-3) + offsets).flatten(-3, -2).transpose(-1, -2)
    if not transposed:
        candidates = candidates.contiguous()  # gathered row by row, as the scores lie
    values = torch.gather(scores, -1, candidates)
    chosen = _largest(values, k).transpose(-1, -2)
    return torch.gather(values, -1, chosen), torch.gather(candidates, -1, chosen)


_KEYED = (torch.float32, torch.float16, torch.bfloat16)  # exactly representable as float32
_LOW_BITS = (1 << 32) - 1


def _largest(x: Tensor, k: int) -> Tensor:
    """``[..., k, R]``: the indices of the ``k`` largest entries of each row of ``x`` ``[..., R, n]``
    (of any strides), the rows last.

    On CPU, as ``k`` passes of a maximum over the entries laid out before the rows, so that each
    pass runs across rows in vector lanes: torch.topk sorts row by row, several times slower at
    these widths. Each entry's key is its float's bits as an order-preserving integer with its
    index below them: keys are distinct, so a pass takes out exactly one entry."""
    if x.device.type != "cpu" or x.dtype not in _KEYED:
        return x.topk(k, -1, sorted=False).indices.transpose(-1, -2)
    n = x.size(-1)
    bits = x.float().view(torch.int32)
    ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # negative floats' magnitude bits flipped
    keys = ordered.transpose(-1, -2).to(torch.long, memory_format=torch.contiguous_format)
    keys.bitwise_left_shift_(32).bitwise_or_(torch.arange(n, device=x.device).view(n, 1))
    chosen = keys.new_empty(*keys.shape[:-2], k, keys.size(-1))
    for i in range(k):
        index = torch.bitwise_and(keys.amax(-2, keepdim=True), _LOW_BITS, out=chosen[..., i:i + 1, :])
        keys.scatter_(-2, index, torch.iinfo(torch.long).min)
    return chosen
