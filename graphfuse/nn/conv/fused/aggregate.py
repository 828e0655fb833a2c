"""Message aggregation over a :class:`FlatGraph`, all relations at once.

* :func:`relation_aggregate`: per (destination node, relation) sums of source features with
  degree weights, as one sparse-matrix product for sparse relations and per-sample pooling for
  complete bipartite ones (where every destination of a sample sees the same sum).
* :func:`relational_attention`: softmax-weighted sums of per-edge values, per node across all
  incoming relations or per relation. Sparse relations gather per edge; complete bipartite
  relations run as padded per-sample blocks (a batched matrix product, no per-edge messages).
  The two parts are merged exactly with a shared per-group maximum (as in flash attention).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import Tensor

from graphfuse.nn.conv.fused.bipartite import BlockSums
from graphfuse.nn.conv.fused.first_order import require_first_order
from graphfuse.nn.flat import FlatGraph

_LOW_PRECISION = (torch.float16, torch.bfloat16)


@dataclass
class SparseAdjacency:
    """The sparse relations' weighted adjacency as CSR ``[num_rows, num_nodes]``, one row per
    (destination node, sparse relation into its type): rows of type ``t`` start at
    ``type_offsets[t]``, node-major, relations in ``relations[t]`` order. ``group_rows`` maps
    each row to its group row. :meth:`product` multiplies by it, differentiably in the dense side."""

    matrix: Tensor
    group_rows: Tensor
    type_offsets: list[int]
    relations: list[list[int]]

    @cached_property
    def transposed(self) -> Tensor:
        """The CSR of ``matrix.T``, made on first use (the backward of :meth:`product`) and kept for
        every layer sharing the adjacency. torch.sparse.mm's own backward converts the transposed
        matrix to CSR in every call: 4.4 ms a layer at the throughput benchmark's realistic size on
        CPU, where this sorts the column indices once, as 16- or 32-bit keys (:func:`_compressed`)."""
        crow, col = self.matrix.crow_indices(), self.matrix.col_indices()
        num_rows, num_columns = self.matrix.shape
        rows = torch.repeat_interleave(torch.arange(num_rows, device=crow.device), crow.diff().long(),
                                       output_size=col.numel())
        order, transposed_crow = _compressed(col, num_columns)
        return _csr(*_kernel_indices(transposed_crow, rows.index_select(0, order), num_rows),
                    self.matrix.values().index_select(0, order), (num_columns, num_rows))

    def product(self, x: Tensor) -> Tensor:
        """``matrix @ x`` (:func:`spmm`), its gradient in ``x`` a product with :attr:`transposed`."""
        return AdjacencyProduct.apply(x, self)


class AdjacencyProduct(torch.autograd.Function):
    """``adjacency.matrix @ x`` with the backward ``adjacency.transposed @ grad``: see
    :meth:`SparseAdjacency.product`. Twice differentiable (both directions are :func:`spmm`)."""

    @staticmethod
    def forward(ctx, x: Tensor, adjacency: SparseAdjacency) -> Tensor:
        ctx.adjacency = adjacency
        return spmm(adjacency.matrix, x)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        return spmm(ctx.adjacency.transposed, grad_out), None


def _adjacency(graph: FlatGraph, normalize: str, self_loops: bool) -> SparseAdjacency:
    edges = graph.sparse_edges(self_loops)
    schema, device = graph.schema, graph.device
    run_dense = graph.runs_dense(self_loops)
    relations = [[r for r in schema.in_relations[t] if not run_dense[r]] for t in range(schema.num_node_types)]
    is_sparse = torch.tensor([not run_dense[r] for t in range(schema.num_node_types)
                              for r in schema.in_relations[t]] or [False], device=device)
    sparse_slot = torch.cat([is_sparse.new_zeros(0)] + [
        is_sparse[graph.group_slot_offsets[t]:graph.group_slot_offsets[t + 1]].repeat(n)
        for t, n in enumerate(graph.num_nodes_per_type)])
    group_rows = torch.nonzero(sparse_slot).flatten()
    compact = torch.cumsum(sparse_slot.long(), 0) - 1
    row = compact.index_select(0, edges.group_row)
    num_rows = group_rows.numel()
    if normalize == "sum":
        weight = torch.ones(edges.num_edges, device=device)
    else:
        in_degree = torch.bincount(row, minlength=num_rows).float()
        if normalize == "mean":
            weight = in_degree.index_select(0, row).reciprocal()
        else:
            out_degree = torch.bincount(edges.source_row, minlength=graph.num_source_rows).float()
            weight = (in_degree.index_select(0, row) * out_degree.index_select(0, edges.source_row)).rsqrt()
    order, crow = _compressed(row, num_rows)
    with warnings.catch_warnings():  # torch flags every CSR tensor as beta; the product here is exact
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        matrix = torch.sparse_csr_tensor(*_kernel_indices(crow, edges.src.index_select(0, order), graph.num_nodes),
                                         weight.index_select(0, order), check_invariants=False,
                                         size=(num_rows, graph.num_nodes))
    offsets = [0]
    for t, n in enumerate(graph.num_nodes_per_type):
        offsets.append(offsets[-1] + n * len(relations[t]))
    return SparseAdjacency(matrix, group_rows, offsets, relations)


def sparse_adjacency(graph: FlatGraph, normalize: str = "sym", self_loops: bool = False) -> SparseAdjacency:
    """The sparse relations' weighted adjacency (cached on the graph)."""
    return graph.cached(("adjacency", normalize, self_loops), lambda: _adjacency(graph, normalize, self_loops))


def spmm(matrix: Tensor, x: Tensor) -> Tensor:
    """``matrix @ x`` for a CSR ``matrix``; low-precision inputs run in float32 (CPU sparse kernels
    have no bfloat16) and come back in their dtype."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        if x.dtype in _LOW_PRECISION:
            return torch.sparse.mm(matrix, x.float()).to(x.dtype)
        return torch.sparse.mm(matrix.to(x.dtype), x)


def pooled_by_sample(x: Tensor, graph: FlatGraph) -> Tensor:
    """Sum of ``x`` over each (node type, sample): ``[T, B, C]``."""
    T, B = graph.schema.num_node_types, graph.num_samples
    pooled = x.new_zeros(T * B, x.size(-1)).index_add(0, graph.type_sample, x)
    return pooled.view(T, B, -1)


def dense_scale(graph: FlatGraph, relations: Tensor, normalize: str) -> Tensor:
    """``[R_d, B]`` weight of each complete bipartite relation's pooled sum per sample (0 where a
    sample lacks either side)."""
    schema = graph.schema
    src = graph.counts[torch.tensor(schema.src_type, device=graph.device)[relations]].float()
    dst = graph.counts[torch.tensor(schema.dst_type, device=graph.device)[relations]].float()
    present = (src > 0) & (dst > 0)
    if normalize == "sum":
        scale = torch.ones_like(src)
    elif normalize == "mean":
        scale = src.clamp_min(1).reciprocal()
    else:
        scale = (src * dst).clamp_min(1).rsqrt()
    return scale * present


def relation_aggregate(x: Tensor, graph: FlatGraph, normalize: str = "mean", self_loops: bool = False
                       ) -> tuple[Tensor, Tensor]:
    r"""Per (destination node, relation) weighted sums of source features: ``[num_group_rows, C]``
    and a boolean ``[num_group_rows]`` of the rows that received any edge.

    ``normalize`` weighs edge :math:`j \to i` of relation :math:`r` by :math:`1/\sqrt{d^{in}_r(i)
    d^{out}_r(j)}` (``"sym"``), :math:`1/d^{in}_r(i)` (``"mean"``) or 1 (``"sum"``). Sparse
    relations take one sparse-matrix product, complete bipartite ones a per-sample sum.
    """
    adjacency = sparse_adjacency(graph, normalize, self_loops)
    out = x.new_zeros(graph.num_group_rows, x.size(-1)).index_copy(0, adjacency.group_rows, adjacency.product(x))
    blocks = graph.dense_blocks(self_loops)
    if blocks is not None:
        src_type = torch.tensor(graph.schema.src_type, device=graph.device)[blocks.relation]
        pooled = pooled_by_sample(x, graph)[src_type] * dense_scale(graph, blocks.relation, normalize).unsqueeze(-1)
        L = blocks.dst_node.size(-1)
        rows = pooled.unsqueeze(2).expand(-1, -1, L, -1) * blocks.dst_valid.unsqueeze(-1)
        out = out.index_add(0, blocks.dst_group_row.flatten(), rows.flatten(0, 2).to(out.dtype))
    return out, received_rows(graph, self_loops)


def received_rows(graph: FlatGraph, self_loops: bool = False) -> Tensor:
    """Boolean ``[num_group_rows]``: the (destination node, relation) pairs with any incoming edge."""
    def make() -> Tensor:
        edges = graph.sparse_edges(self_loops)
        rows = torch.bincount(edges.group_row, minlength=graph.num_group_rows) > 0
        blocks = graph.dense_blocks(self_loops)
        if blocks is not None:
            src_type = torch.tensor(graph.schema.src_type, device=graph.device)[blocks.relation]
            present = (graph.counts[src_type] > 0).unsqueeze(-1) & blocks.dst_valid
            rows = rows.index_fill(0, blocks.dst_group_row[present], True)
        return rows

    return graph.cached(("received_rows", self_loops), make)


def _csr(crow: Tensor, col: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():  # torch flags every CSR tensor as beta; the products here are exact
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, size=size, check_invariants=False)


def _spmm_into(out: Tensor, matrix: Tensor, dense: Tensor) -> None:
    """Writes ``matrix @ dense`` for a CSR ``matrix`` into ``out``."""
    # addmm with beta=0 ignores what `out` holds; torch.mm(..., out=) fills a zero matrix of the
    # result's size and copies the product over it.
    torch.addmm(out, matrix, dense, beta=0, out=out)


def _kernel_indices(crow: Tensor, col: Tensor, num_columns: int) -> tuple[Tensor, Tensor]:
    """A CSR's ``(crow, col)`` as int32 where every index and count fits: the CPU sparse kernels (MKL)
    take 32-bit indices and would copy 64-bit ones in every product."""
    if max(col.numel(), crow.numel() - 1, num_columns) <= torch.iinfo(torch.int32).max:
        return crow.int(), col.int()
    return crow, col


def _sampled_into(out: Tensor, layout: EdgeLayout, groups: Tensor, sources: Tensor) -> None:
    """Adds ``dot(groups[group(e)], sources[source(e)])`` to ``out[e]`` for every (sorted) edge of
    ``layout``: a sampled product into a CSR over ``out`` itself, where one into a separate pattern
    clones the pattern's indices and values in every call. ``out`` must hold zeros (or what to add
    to), not garbage: even ``beta=0`` multiplies what it holds, and ``0 * nan`` is ``nan``."""
    matrix = _csr(*layout.csr, out, (layout.num_groups, layout.num_sources))
    torch.sparse.sampled_addmm(matrix, groups, sources.t(), out=matrix)


def _compressed(rows: Tensor, num_rows: int) -> tuple[Tensor, Tensor]:
    """``(order, crow)``: a stable sort of ``rows`` and the CSR row pointer."""
    # Narrow keys sort faster: a million edges on CPU, 16-bit 5 to 12 ms, 32-bit 10 to 18, 64-bit 17. Rows
    # below 2^16 wrap into int16 with the sign bit flipped, which keeps their order.
    if num_rows <= 1 << 16:
        keys = rows.to(torch.int16).bitwise_xor_(torch.iinfo(torch.int16).min)
    else:
        keys = rows.int() if num_rows <= torch.iinfo(torch.int32).max else rows
    order = torch.argsort(keys, stable=True)
    crow = torch.zeros(num_rows + 1, dtype=torch.long, device=rows.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=num_rows), 0)
    return order, crow


@dataclass
class EdgeLayout:
    """The sparse edges sorted by destination group, stably (``order[i]`` is the edge at sorted
    position ``i``): the CSR ``crow`` / ``col`` (source rows) of the ``[num_groups, num_sources]``
    pattern, each sorted edge's ``group`` and ``group_row``, and the transposed CSR by source row
    (``transposed_order[i]`` is the sorted position of its ``i``-th entry). :class:`EdgeAttention`
    and :class:`EdgeScores` take and give per-edge tensors in the sorted order, so that a CSR
    matrix's values are a plain row of them."""

    order: Tensor
    crow: Tensor
    col: Tensor
    group: Tensor
    group_row: Tensor
    transposed_order: Tensor
    transposed_crow: Tensor
    transposed_col: Tensor
    num_groups: int
    num_sources: int
    # (crow, col) of both CSRs as the sparse kernels take them (:func:`_kernel_indices`); the 64-bit ones
    # stay for gathers, whose backward (index_add_) is many times slower with 32-bit indices.
    csr: tuple[Tensor, Tensor] = field(init=False)
    transposed_csr: tuple[Tensor, Tensor] = field(init=False)

    def __post_init__(self) -> None:
        self.csr = _kernel_indices(self.crow, self.col, self.num_sources)
        self.transposed_csr = _kernel_indices(self.transposed_crow, self.transposed_col, self.num_groups)


GROUPINGS = ("node", "group")


def edge_layout(graph: FlatGraph, self_loops: bool, by: str) -> EdgeLayout:
    """The :class:`EdgeLayout` of ``graph.sparse_edges(self_loops)`` grouped ``by`` destination
    node or by group row (cached on the graph)."""
    def make() -> EdgeLayout:
        edges = graph.sparse_edges(self_loops)
        group, num_groups = (edges.dst, graph.num_nodes) if by == "node" else (edges.group_row, graph.num_group_rows)
        order, crow = _compressed(group, num_groups)
        # index_select: 1-D advanced indexing (x[order]) takes about three times as long.
        col, group = edges.source_row.index_select(0, order), group.index_select(0, order)
        transposed_order, transposed_crow = _compressed(col, graph.num_source_rows)
        return EdgeLayout(order, crow, col, group, edges.group_row.index_select(0, order), transposed_order,
                          transposed_crow, group.index_select(0, transposed_order), num_groups, graph.num_source_rows)

    return graph.cached(("edge_layout", by, self_loops), make)


def _head_first(tensor: Tensor, dtype: torch.dtype) -> Tensor:
    return tensor.to(dtype).contiguous()


class EdgeAttention(torch.autograd.Function):
    """``out[h, g] = sum over edges e into g of weight[h, e] * values[h, source(e)]`` as one sparse
    matrix product per head, without per-edge ``[E, H, C]`` tensors in forward or backward (the
    weights' gradient is a sampled dense-dense product). ``weight`` is ``[H, E]`` in the sorted
    order of ``layout``."""

    @staticmethod
    def forward(ctx, weight: Tensor, values: Tensor, layout: EdgeLayout):
        dtype = values.dtype
        compute = torch.float32 if dtype in _LOW_PRECISION else dtype  # CPU sparse kernels lack bfloat16
        weight, by_head = _head_first(weight, compute), _head_first(values, compute)
        out = by_head.new_empty(weight.size(0), layout.num_groups, by_head.size(-1))
        with torch.autocast(device_type=values.device.type, enabled=False):
            for h in range(weight.size(0)):
                _spmm_into(out[h], _csr(*layout.csr, weight[h], (layout.num_groups, layout.num_sources)),
                           by_head[h])
        ctx.layout = layout
        ctx.save_for_backward(weight, by_head)
        ctx.dtype = dtype
        return out.to(dtype)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        require_first_order("EdgeAttention")
        with torch.autocast(device_type=grad_out.device.type, enabled=False):
            return EdgeAttention._backward(ctx, grad_out)

    @staticmethod
    def _backward(ctx, grad_out: Tensor):
        weight, by_head = ctx.saved_tensors
        layout = ctx.layout
        grad_by_head = _head_first(grad_out, weight.dtype)
        grad_weight, grad_values = torch.zeros_like(weight), torch.empty_like(by_head)
        transposed_weight = weight.index_select(1, layout.transposed_order)
        for h in range(weight.size(0)):
            transposed = _csr(*layout.transposed_csr, transposed_weight[h],
                              (layout.num_sources, layout.num_groups))
            _spmm_into(grad_values[h], transposed, grad_by_head[h])
            _sampled_into(grad_weight[h], layout, grad_by_head[h], by_head[h])
        return grad_weight.to(ctx.dtype), grad_values.to(ctx.dtype), None


class EdgeScores(torch.autograd.Function):
    """``scores[h, e] = dot(queries[h, group(e)], keys[h, source(e)])`` for every edge of ``layout``
    (``[H, E]``, in its sorted order), as one sampled dense-dense product per head: no per-edge
    ``[E, H, D]`` gathers in forward or backward (the gradients are sparse-dense products, the
    transpose of :class:`EdgeAttention`'s)."""

    @staticmethod
    def forward(ctx, queries: Tensor, keys: Tensor, layout: EdgeLayout):
        dtypes = (queries.dtype, keys.dtype)
        compute = torch.promote_types(*dtypes)
        compute = torch.float32 if compute in _LOW_PRECISION else compute  # CPU sparse kernels lack bfloat16
        queries, keys = _head_first(queries, compute), _head_first(keys, compute)
        scores = queries.new_zeros(queries.size(0), layout.col.numel())
        with torch.autocast(device_type=queries.device.type, enabled=False):
            for h in range(queries.size(0)):
                _sampled_into(scores[h], layout, queries[h], keys[h])
        ctx.layout, ctx.dtypes = layout, dtypes
        ctx.save_for_backward(queries, keys)
        return scores

    @staticmethod
    def backward(ctx, grad_scores: Tensor):
        require_first_order("EdgeScores")
        queries, keys = ctx.saved_tensors
        layout = ctx.layout
        grad_scores = _head_first(grad_scores, queries.dtype)
        grad_queries, grad_keys = torch.empty_like(queries), torch.empty_like(keys)
        with torch.autocast(device_type=queries.device.type, enabled=False):
            transposed_scores = grad_scores.index_select(1, layout.transposed_order)
            for h in range(queries.size(0)):
                _spmm_into(grad_queries[h], _csr(*layout.csr, grad_scores[h],
                                                 (layout.num_groups, layout.num_sources)), keys[h])
                _spmm_into(grad_keys[h], _csr(*layout.transposed_csr, transposed_scores[h],
                                              (layout.num_sources, layout.num_groups)), queries[h])
        return grad_queries.to(ctx.dtypes[0]), grad_keys.to(ctx.dtypes[1]), None


class NodeFirst(torch.autograd.Function):
    """``out[g, h] = sums[h, g] * scale[h, g]``: head-first ``[H, G, C]`` sums scaled into a
    contiguous node-first ``[G, H, C]`` in one pass, their gradient back head-first and contiguous
    (a permuted view's would reach every consumer of the sums strided, and each index_add_'s
    backward and sparse product would copy it whole)."""

    @staticmethod
    def forward(ctx, sums: Tensor, scale: Tensor) -> Tensor:
        out = sums.new_empty(sums.size(1), sums.size(0), sums.size(2))
        torch.mul(sums.permute(1, 0, 2), scale.t().unsqueeze(-1), out=out)
        ctx.save_for_backward(sums, scale)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        require_first_order("NodeFirst")
        sums, scale = ctx.saved_tensors
        by_head = grad_out.permute(1, 0, 2)
        grad_sums = grad_scale = None
        if ctx.needs_input_grad[0]:
            grad_sums = torch.mul(by_head, scale.unsqueeze(-1), out=sums.new_empty(sums.shape))
        if ctx.needs_input_grad[1]:
            grad_scale = (by_head * sums).sum(-1)
        return grad_sums, grad_scale


def relational_attention(graph: FlatGraph, values: Tensor, sparse_scores: Tensor, dense_scores: Tensor | None,
                         self_loops: bool, per_relation: bool, dropout: float = 0.0, training: bool = False,
                         return_weights: bool = False, block_sums: Sequence[BlockSums] | None = None
                         ) -> tuple[Tensor, dict | None]:
    r"""Softmax attention over all edges of the batch: ``[G, H, C]`` with ``G`` the flat nodes
    (softmax across all incoming relations) or the group rows (``per_relation``).

    Tensors are head-first, so that each head's part is contiguous for the matrix products.

    Args:
        values: ``[H, num_source_rows, C]`` per (source node, relation) values.
        sparse_scores: ``[H, E]`` scores of ``graph.sparse_edges(self_loops)``, in the sorted
            order of their :func:`edge_layout` (by group row with ``per_relation``, else by node).
        dense_scores: ``[R_d, B, H, L_dst, L_src]`` scores of ``graph.dense_blocks(self_loops)``.
        block_sums: instead of ``dense_scores``, the dense blocks already reduced per destination
            by a block kernel (:class:`~graphfuse.nn.conv.fused.bipartite.BlockSums`, one per group
            of :func:`~graphfuse.nn.conv.fused.bipartite.block_groups`).
        return_weights: also return ``{edge_type: (edge_index, alpha [E_r, H])}`` in each
            relation's input edge order (added self loops last).
    """
    edges = graph.sparse_edges(self_loops)
    blocks = graph.dense_blocks(self_loops)
    layout = edge_layout(graph, self_loops, "group" if per_relation else "node")
    heads, channels = values.size(0), values.size(-1)
    num_groups = graph.num_group_rows if per_relation else graph.num_nodes
    sparse_group, scores = layout.group, sparse_scores
    # The edges lie grouped (CSR order): each group's maximum is a segment's (-inf where empty).
    maximum = torch.segment_reduce(scores.detach(), "max", offsets=layout.crow.expand(heads, -1), axis=1)
    parts = []  # (destination of each block slot, the slots' maximum score)
    if block_sums is not None:
        parts = [((part.blocks.dst_group_row if per_relation else part.blocks.dst_node).flatten(),
                  part.shift.flatten(1)) for part in block_sums]
    elif blocks is not None:
        mask = (blocks.dst_valid.unsqueeze(-1) & blocks.src_valid.unsqueeze(-2)).unsqueeze(2)
        dense_scores = dense_scores.masked_fill(~mask, float("-inf")).permute(2, 0, 1, 3, 4)
        parts = [((blocks.dst_group_row if per_relation else blocks.dst_node).flatten(),
                  dense_scores.detach().amax(-1).flatten(1))]
    for dense_group, block_max in parts:
        maximum = maximum.scatter_reduce(1, dense_group.expand(heads, -1), block_max.to(maximum.dtype), "amax")
    maximum = torch.where(torch.isfinite(maximum), maximum, torch.zeros_like(maximum))

    weights = torch.exp(scores - maximum.index_select(1, sparse_group))  # 4x faster than [:, index]
    total = weights.new_zeros(heads, num_groups).index_add_(1, sparse_group, weights)
    kept = _dropout(weights, dropout, training)
    if edges.num_edges:
        out = EdgeAttention.apply(kept, values, layout)
    else:
        out = values.new_zeros(heads, num_groups, channels)
    dense_weights = None
    for i, (dense_group, block_max) in enumerate(parts):
        shift = maximum.index_select(1, dense_group)
        if block_sums is not None:
            factor = torch.exp(block_max - shift)  # 0 where block_max is -inf (padding, no sources)
            block_total = block_sums[i].total.flatten(1) * factor
            block_out = block_sums[i].out.flatten(1, 3) * factor.unsqueeze(-1).to(block_sums[i].out.dtype)
        else:
            dense_weights = torch.exp(dense_scores - shift.view_as(dense_scores[..., 0]).unsqueeze(-1))
            block_total = dense_weights.sum(-1).flatten(1)
            block_values = values[:, blocks.src_row]
            block_out = torch.matmul(_dropout(dense_weights, dropout, training).to(block_values.dtype),
                                     block_values).flatten(1, 3)
        # In place: neither sum is saved for a backward, and an out-of-place add copies them per group.
        total.index_add_(1, dense_group, block_total.to(total.dtype))
        out.index_add_(1, dense_group, block_out.to(out.dtype))
    safe_total = torch.where(total > 0, total, torch.ones_like(total))
    # A product with the reciprocal: its backward is two passes over `out` where a quotient's is four.
    out = NodeFirst.apply(out, safe_total.reciprocal().to(out.dtype))
    if not return_weights:
        return out, None
    dense_alpha = None if dense_weights is None else dense_weights / safe_total[:, parts[0][0]].view_as(
        dense_weights[..., 0]).unsqueeze(-1)
    alpha = weights / safe_total.index_select(1, sparse_group)
    alpha = torch.empty_like(alpha).index_copy_(1, layout.order, alpha)  # back in edge order
    return out, _attention_weights(graph, edges, blocks, alpha.t(), dense_alpha)


def _dropout(weights: Tensor, p: float, training: bool) -> Tensor:
    return torch.nn.functional.dropout(weights, p, training) if p > 0 and training else weights


def _attention_weights(graph: FlatGraph, edges, blocks, sparse_alpha: Tensor, dense_alpha: Tensor | None) -> dict:
    result = graph.by_relation(edges, sparse_alpha)
    for i, r in enumerate(blocks.relations if blocks is not None else []):
        valid = blocks.src_valid[i].unsqueeze(-1) & blocks.dst_valid[i].unsqueeze(-2)
        result[graph.schema.edge_types[r]] = (graph.edge_index[r], dense_alpha[:, i].permute(1, 3, 2, 0)[valid])
    return result
