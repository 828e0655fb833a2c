r"""Attention over complete bipartite blocks without per-edge tensors in autograd.

A complete bipartite relation of a sample is a dense block of scores, reduced here to
per-destination softmax sums ``(shift, total, out)`` (as :func:`relational_attention` takes them)
with hand-written backwards that keep only the inputs and recompute the rest chunk by chunk:

* GAT scores :math:`\mathrm{LeakyReLU}(a_i + b_j)` (destination logit plus source logit), by one
  of two exact kernels chosen by block size (:class:`KernelRules` ``sorted_min_block``):
  :class:`BlockAttention`, the whole block in a few in-place passes and two batched matmuls, or
  :class:`SortedBlockAttention`, :math:`O((n_s + n_d) \log n_s)` per block using the piecewise
  linear score, for long source sides;
* HGT scores :math:`\mathbf{q}_i^{\top} \mathbf{k}_j` (the relation's attention matrix and prior
  folded into the keys): :class:`DotBlockAttention`, flash-attention style.

Relations whose blocks differ in shape run apart (:func:`block_groups`), each as long as its own
two node types: padding a caption's blocks to a recording's length would multiply their cost.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from graphfuse.nn.conv.fused.rules import KernelRules
from graphfuse.nn.flat import DenseBlocks, FlatGraph

LOG2_E = math.log2(math.e)
LN_2 = math.log(2.0)


@dataclass
class BlockSums:
    """Complete bipartite blocks reduced per destination: ``shift`` ``[H, R, B, L_dst]`` (``-inf``
    at padding and where a sample has no sources), ``total = sum_j exp(s_ij - shift_i)`` and
    ``out = sum_j exp(s_ij - shift_i) v_j`` (``[H, R, B, L_dst, C]``), for the relations and
    destination slots of ``blocks``."""

    blocks: DenseBlocks
    shift: Tensor
    total: Tensor
    out: Tensor


def block_groups(graph: FlatGraph, self_loops: bool = False) -> list[DenseBlocks]:
    """``graph.dense_blocks(self_loops)`` split into groups of relations whose blocks have one
    shape, each cut to the longest sample of its own source and destination node types (cached
    on the graph)."""
    def make() -> list[DenseBlocks]:
        blocks = graph.dense_blocks(self_loops)
        if blocks is None:
            return []
        schema, sizes = graph.schema, graph.type_block_size
        shapes: dict[tuple[int, int], list[int]] = {}
        for i, r in enumerate(blocks.relations):
            shape = (max(1, sizes[schema.src_type[r]]), max(1, sizes[schema.dst_type[r]]))
            shapes.setdefault(shape, []).append(i)
        groups = []
        for (src_size, dst_size), positions in shapes.items():
            index = torch.tensor(positions, device=graph.device)

            def cut(x: Tensor, size: int, index=index) -> Tensor:
                return x.index_select(0, index)[:, :, :size]

            groups.append(DenseBlocks([blocks.relations[i] for i in positions], blocks.relation[index],
                                      *(cut(x, src_size) for x in (blocks.src_row, blocks.src_node, blocks.src_valid)),
                                      *(cut(x, dst_size) for x in (blocks.dst_node, blocks.dst_group_row,
                                                                   blocks.dst_valid))))
        return groups

    return graph.cached(("block_groups", self_loops), make)


def _head_rows(index: Tensor, heads: int, num_rows: int) -> Tensor:
    """Rows of a flattened ``[H * num_rows, C]`` table for ``index`` ``[R, B, L]`` and every head:
    ``[H * R * B, L]``."""
    offsets = num_rows * torch.arange(heads, device=index.device).view(-1, 1, 1, 1)
    return (index.unsqueeze(0) + offsets).reshape(-1, index.size(-1))


def _gat_inputs(ctx, a: Tensor, b: Tensor, table: Tensor, index: Tensor, negative_slope: float, chunk_bytes: int
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A GAT block kernel's inputs as ``[n, L]`` logits, the ``[H * S, C]`` table and its ``[n, L_s]``
    rows, in one dtype (the widest of the inputs: the blocks are computed as written even under
    autocast); remembers what the backward needs on ``ctx``."""
    ctx.dtypes = (a.dtype, b.dtype, table.dtype)
    ctx.shape = a.shape, b.shape, table.shape
    ctx.negative_slope, ctx.chunk_bytes = negative_slope, chunk_bytes
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), table.dtype)
    rows = _head_rows(index, table.size(0), table.size(1))
    return a.to(dtype).reshape(-1, a.size(-1)), b.to(dtype).reshape(-1, b.size(-1)), \
        table.to(dtype).reshape(-1, table.size(-1)), rows


def _input_gradients(ctx, grads: tuple[Tensor, ...], num_settings: int) -> tuple:
    """A block kernel's gradients in its inputs' shapes (``ctx.shape``) and dtypes (``ctx.dtypes``),
    ``None`` for its ``num_settings`` other arguments."""
    grads = (grad.view(shape).to(dtype) for grad, shape, dtype in zip(grads, ctx.shape, ctx.dtypes, strict=True))
    return (*grads, *(None,) * num_settings)


class BlockAttention(torch.autograd.Function):
    """Softmax sums of GAT score blocks: ``[H, R, B, L_d]`` logits ``a``, ``[H, R, B, L_s]`` logits
    ``b`` (``-inf`` for padding) and values ``table[h, index[r, b]]`` (``table`` ``[H, S, C]``,
    ``index`` ``[R, B, L_s]``) give the shift ``m``, ``total = sum_j exp(s_ij - m_i)`` and
    ``out = sum_j exp(s_ij - m_i) v_j``.

    Blocks are processed a chunk of (head, relation, sample) blocks at a time, about
    ``chunk_bytes`` of scores each (:class:`KernelRules`): no block-sized tensor of the whole
    batch is ever held, and the backward recomputes each chunk's scores and values.
    """

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, table: Tensor, index: Tensor, negative_slope: float, chunk_bytes: int):
        flat_a, flat_b, flat_table, rows = _gat_inputs(ctx, a, b, table, index, negative_slope, chunk_bytes)
        channels = table.size(-1)
        with torch.autocast(device_type=a.device.type, enabled=False):
            # In base-2 units (LeakyReLU commutes with a positive scale): exp2 is several times
            # cheaper than exp on CPU.
            flat_a, flat_b = flat_a * LOG2_E, flat_b * LOG2_E
            top = flat_b.amax(-1, keepdim=True)
            top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
            # The largest score of each destination, rounded as the scores are (so the largest weight
            # is exactly 1, whatever the logits' magnitude).
            shift_base2 = F.leaky_relu(flat_a + top, negative_slope)
            shift = shift_base2 / LOG2_E
            total = flat_a.new_empty(flat_a.shape)
            out = flat_a.new_empty(*flat_a.shape, channels)
            for chunk in _chunks(flat_a.size(0), flat_a.size(-1) * flat_b.size(-1) * flat_a.element_size(),
                                 chunk_bytes):
                weights = BlockAttention._weights(flat_a[chunk], flat_b[chunk], shift_base2[chunk], negative_slope)
                torch.sum(weights, -1, out=total[chunk])
                torch.bmm(weights, _rows(flat_table, rows[chunk]), out=out[chunk])
        ctx.save_for_backward(flat_a, flat_b, flat_table, rows, shift_base2)
        shift = shift.view(a.shape)
        ctx.mark_non_differentiable(shift)
        return shift, total.view(a.shape), out.view(*a.shape, channels)

    @staticmethod
    def _weights(a: Tensor, b: Tensor, shift: Tensor, negative_slope: float, keep_scores: bool = False):
        """``exp2(LeakyReLU(a_i + b_j) - shift_i)`` of base-2 logits (and the raw scores, for their sign)."""
        scores = a.unsqueeze(-1) + b.unsqueeze(-2)
        weights = F.leaky_relu(scores, negative_slope, inplace=not keep_scores)
        weights = weights.sub_(shift.unsqueeze(-1)).exp2_()
        return (weights, scores) if keep_scores else weights

    @staticmethod
    def backward(ctx, grad_shift, grad_total, grad_out):
        a, b, table, rows, shift = ctx.saved_tensors
        slope, channels = ctx.negative_slope, table.size(-1)
        grad_total = grad_total.to(a.dtype).reshape(a.shape)
        grad_out = grad_out.to(a.dtype).reshape(*a.shape, channels)
        grad_a, grad_b, grad_table = torch.empty_like(a), torch.empty_like(b), torch.zeros_like(table)
        with torch.autocast(device_type=a.device.type, enabled=False):
            for chunk in _chunks(a.size(0), a.size(-1) * b.size(-1) * a.element_size(), ctx.chunk_bytes):
                weights, scores = BlockAttention._weights(a[chunk], b[chunk], shift[chunk], slope, keep_scores=True)
                gradient = grad_out[chunk]
                grad_table.index_add_(0, rows[chunk].flatten(),
                                      torch.bmm(weights.transpose(1, 2), gradient).view(-1, channels))
                grad_weights = torch.bmm(gradient, _rows(table, rows[chunk]).transpose(1, 2))
                grad_weights.add_(grad_total[chunk].unsqueeze(-1)).mul_(weights)
                # Through LeakyReLU in one fused pass (its slope where the raw score was negative).
                grad_scores = torch.ops.aten.leaky_relu_backward(grad_weights, scores, slope, False)
                torch.sum(grad_scores, -1, out=grad_a[chunk])
                torch.sum(grad_scores, -2, out=grad_b[chunk])
        return _input_gradients(ctx, (grad_a, grad_b, grad_table), 3)


def _rows(table: Tensor, rows: Tensor) -> Tensor:
    """``table[rows]`` for a 2-D ``table``, copied row by row (advanced indexing copies per element)."""
    return table.index_select(0, rows.flatten()).view(*rows.shape, table.size(-1))


def _chunks(count: int, bytes_per_item: int, chunk_bytes: int) -> list[slice]:
    size = max(1, chunk_bytes // max(bytes_per_item, 1))
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


class SortedBlockAttention(torch.autograd.Function):
    r""":class:`BlockAttention`'s sums in :math:`O((n_s + n_d) \log n_s)` per block instead of
    :math:`O(n_s n_d)`, with the same arguments and results.

    The score :math:`\mathrm{LeakyReLU}(a_i + b_j)` is :math:`a_i + b_j` where
    :math:`b_j \ge -a_i` and :math:`\lambda (a_i + b_j)` elsewhere, so :math:`e^{\text{score}}`
    factorises on each side of the threshold. With the sources sorted by :math:`b_j`, the sources
    above a destination's threshold are a suffix: suffix and prefix sums of :math:`e^{b_j}
    \mathbf{v}_j` and :math:`e^{\lambda b_j} \mathbf{v}_j` give every destination's softmax sums
    with one binary search. The backward runs the same sums the other way (each source gathers the
    destinations whose threshold it passes, as prefix sums over the destinations' split points)
    and keeps only the inputs, the sort order and the split points.
    """

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, table: Tensor, index: Tensor, negative_slope: float, chunk_bytes: int):
        flat_a, flat_b, flat_table, rows = _gat_inputs(ctx, a, b, table, index, negative_slope, chunk_bytes)
        channels, dtype = table.size(-1), flat_a.dtype
        with torch.autocast(device_type=a.device.type, enabled=False):
            top = flat_b.amax(-1, keepdim=True)  # -inf where a block has no sources
            top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
            order = torch.argsort(flat_b, dim=-1)  # padding (-inf) first
            sorted_b = torch.gather(flat_b, 1, order)
            keys = torch.where(torch.isfinite(sorted_b), sorted_b, torch.full_like(sorted_b, torch.finfo(dtype).min))
            # Sources from split on take the upper branch: b_j >= -a_i.
            split = torch.searchsorted(keys, -flat_a)
            reach = flat_a + top  # the best score's argument for each destination
            shift = F.leaky_relu(reach, negative_slope)
            total = flat_a.new_empty(flat_a.shape)
            out = flat_a.new_empty(*flat_a.shape, channels)
            for chunk in _chunks(flat_a.size(0), (flat_b.size(-1) + 1) * (channels + 1) * 6 * flat_a.element_size(),
                                 chunk_bytes):
                sums = _SortedSums(sorted_b[chunk], top[chunk], flat_table, rows[chunk], order[chunk], negative_slope)
                upper, lower = _scales(reach[chunk], shift[chunk], negative_slope)
                at = split[chunk]
                total[chunk] = upper * sums.upper_w.gather(1, at) + lower * sums.lower_w.gather(1, at)
                at = at.unsqueeze(-1).expand(-1, -1, channels)
                out[chunk] = (upper.unsqueeze(-1) * sums.upper_v.gather(1, at)
                              + lower.unsqueeze(-1) * sums.lower_v.gather(1, at))
        ctx.save_for_backward(flat_a, flat_table, rows, top, order, sorted_b, split, shift)
        shift = shift.view(a.shape)
        ctx.mark_non_differentiable(shift)
        return shift, total.view(a.shape), out.view(*a.shape, channels)

    @staticmethod
    def backward(ctx, grad_shift, grad_total, grad_out):
        a, table, rows, top, order, sorted_b, split, shift = ctx.saved_tensors
        slope, channels = ctx.negative_slope, table.size(-1)
        grad_total = grad_total.to(a.dtype).reshape(a.shape)
        grad_out = grad_out.to(a.dtype).reshape(*a.shape, channels)
        grad_a, grad_b, grad_table = torch.empty_like(a), torch.empty_like(sorted_b), torch.zeros_like(table)
        num_sources = sorted_b.size(-1)
        with torch.autocast(device_type=a.device.type, enabled=False):
            for chunk in _chunks(a.size(0), (num_sources + 1) * (channels + 1) * 8 * a.element_size(), ctx.chunk_bytes):
                sums = _SortedSums(sorted_b[chunk], top[chunk], table, rows[chunk], order[chunk], slope)
                upper, lower = _scales(a[chunk] + top[chunk], shift[chunk], slope)
                at, g_total, g_out = split[chunk], grad_total[chunk], grad_out[chunk]
                at_v = at.unsqueeze(-1).expand(-1, -1, channels)
                grad_upper = g_total * sums.upper_w.gather(1, at) + (g_out * sums.upper_v.gather(1, at_v)).sum(-1)
                grad_lower = g_total * sums.lower_w.gather(1, at) + (g_out * sums.lower_v.gather(1, at_v)).sum(-1)
                grad_a[chunk] = grad_upper * upper + slope * grad_lower * lower
                # A source at sorted position j is in the upper sums of the destinations that split at
                # or before j, and in the lower sums of those that split after it.
                n = at.size(0)
                upper_by_split = g_total.new_zeros(n, num_sources + 1).scatter_add_(1, at, upper * g_total)
                upper_by_split_v = g_out.new_zeros(n, num_sources + 1, channels).scatter_add_(
                    1, at_v, upper.unsqueeze(-1) * g_out)
                lower_by_split = g_total.new_zeros(n, num_sources + 1).scatter_add_(1, at, lower * g_total)
                lower_by_split_v = g_out.new_zeros(n, num_sources + 1, channels).scatter_add_(
                    1, at_v, lower.unsqueeze(-1) * g_out)
                grad_upper_w = torch.cumsum(upper_by_split, 1)[:, :num_sources]
                grad_upper_v = torch.cumsum(upper_by_split_v, 1)[:, :num_sources]
                grad_lower_w = _suffix_sums(lower_by_split)[:, 1:num_sources + 1]
                grad_lower_v = _suffix_sums(lower_by_split_v)[:, 1:num_sources + 1]
                grad_b[chunk] = (sums.upper * (grad_upper_w + (grad_upper_v * sums.values).sum(-1))
                                 + slope * sums.lower * (grad_lower_w + (grad_lower_v * sums.values).sum(-1)))
                grad_values = sums.upper.unsqueeze(-1) * grad_upper_v + sums.lower.unsqueeze(-1) * grad_lower_v
                grad_table.index_add_(0, sums.rows.flatten(), grad_values.view(-1, channels))
            grad_b = torch.empty_like(grad_b).scatter_(1, order, grad_b)
        return _input_gradients(ctx, (grad_a, grad_b, grad_table), 3)


def _suffix_sums(x: Tensor) -> Tensor:
    """Sums of ``x`` from each position of dimension 1 to its end."""
    return torch.flip(torch.cumsum(torch.flip(x, [1]), 1), [1])


def _scales(reach: Tensor, shift: Tensor, slope: float) -> tuple[Tensor, Tensor]:
    """A destination's factors of the upper and lower branch: ``exp(reach - shift)`` and
    ``exp(slope * reach - shift)``, with ``reach = a_i + max_j b_j``."""
    return torch.exp(reach - shift), torch.exp(slope * reach - shift)


class _SortedSums:
    """A chunk of blocks' sources in score order, their factors ``e^{b_j - top}`` (``upper``) and
    ``e^{slope (b_j - top)}`` (``lower``, both 0 at padding) and the suffix sums of the upper branch
    and prefix sums of the lower one, each with one more slot so that index ``k`` means "sources
    from ``k`` on" / "sources before ``k``"."""

    def __init__(self, sorted_b: Tensor, top: Tensor, table: Tensor, rows: Tensor, order: Tensor, slope: float):
        valid = torch.isfinite(sorted_b)
        relative = torch.where(valid, sorted_b - top, torch.zeros_like(sorted_b))
        self.upper = torch.exp(relative) * valid  # at most 1
        self.lower = torch.exp(slope * relative) * valid
        self.rows = torch.gather(rows, 1, order)
        self.values = _rows(table, self.rows)
        zero_w, zero_v = self.upper.new_zeros(self.upper.size(0), 1), self.values.new_zeros(self.values.size(0), 1,
                                                                                             self.values.size(-1))
        self.upper_w = torch.cat([_suffix_sums(self.upper), zero_w], 1)
        self.upper_v = torch.cat([_suffix_sums(self.upper.unsqueeze(-1) * self.values), zero_v], 1)
        self.lower_w = torch.cat([zero_w, torch.cumsum(self.lower, 1)], 1)
        self.lower_v = torch.cat([zero_v, torch.cumsum(self.lower.unsqueeze(-1) * self.values, 1)], 1)


class DotBlockAttention(torch.autograd.Function):
    """Softmax sums of dot-product score blocks (HGT's), flash-attention style: queries
    ``q_table[h, q_index[r, b, i]]`` and keys and values ``k_table[h, kv_index[r, b, j]]``
    (``[H, N, D]``, ``[H, S, D]`` tables, ``[R, B, L]`` indices), sources where ``src_valid``,
    give ``shift = max_j q_i . k_j``, ``total = sum_j exp(q_i . k_j - shift_i)`` and
    ``out = sum_j exp(q_i . k_j - shift_i) v_j``, each ``[H, R, B, L_dst(, D)]`` (``shift`` is 0
    where a block has no sources).

    Blocks are processed a chunk at a time, about ``chunk_bytes`` of scores each; the backward
    recomputes each chunk's scores, so no block-sized tensor outlives its chunk.
    """

    @staticmethod
    def forward(ctx, q_table: Tensor, k_table: Tensor, v_table: Tensor, q_index: Tensor, kv_index: Tensor,
                src_valid: Tensor, chunk_bytes: int):
        ctx.dtypes = (q_table.dtype, k_table.dtype, v_table.dtype)
        ctx.chunk_bytes = chunk_bytes
        dtype = torch.promote_types(torch.promote_types(q_table.dtype, k_table.dtype), v_table.dtype)
        heads, channels = q_table.size(0), v_table.size(-1)
        flat_q, flat_k, flat_v = (t.to(dtype).reshape(-1, t.size(-1)) for t in (q_table, k_table, v_table))
        q_rows = _head_rows(q_index, heads, q_table.size(1))
        kv_rows = _head_rows(kv_index, heads, k_table.size(1))
        # 0 for a source, -inf for padding, added to the scores by the matmul itself.
        bias = torch.zeros(src_valid.shape, dtype=dtype, device=src_valid.device).masked_fill_(~src_valid,
                                                                                                 float("-inf"))
        bias = bias.unsqueeze(0).expand(heads, *bias.shape).reshape(-1, 1, bias.size(-1))
        num_dst, num_src = q_rows.size(-1), kv_rows.size(-1)
        shift = flat_q.new_empty(q_rows.shape)
        total = flat_q.new_empty(q_rows.shape)
        out = flat_q.new_empty(*q_rows.shape, channels)
        with torch.autocast(device_type=flat_q.device.type, enabled=False):
            scaled_q = flat_q * LOG2_E  # scores in base 2: exp2 is several times cheaper than exp on CPU
            for chunk in _chunks(q_rows.size(0), num_dst * num_src * flat_q.element_size(), chunk_bytes):
                scores = torch.baddbmm(bias[chunk], _rows(scaled_q, q_rows[chunk]),
                                       _rows(flat_k, kv_rows[chunk]).transpose(1, 2))
                top = scores.amax(-1)
                top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
                weights = scores.sub_(top.unsqueeze(-1)).exp2_()
                shift[chunk] = top
                torch.sum(weights, -1, out=total[chunk])
                torch.bmm(weights, _rows(flat_v, kv_rows[chunk]), out=out[chunk])
        ctx.save_for_backward(flat_q, flat_k, flat_v, q_rows, kv_rows, bias, shift)
        ctx.shape = q_table.shape, k_table.shape, v_table.shape
        shape = (heads, *q_index.shape)
        natural = (shift * LN_2).view(shape)
        ctx.mark_non_differentiable(natural)
        return natural, total.view(shape), out.view(*shape, channels)

    @staticmethod
    def backward(ctx, grad_shift, grad_total, grad_out):
        flat_q, flat_k, flat_v, q_rows, kv_rows, bias, shift = ctx.saved_tensors
        channels = flat_v.size(-1)
        grad_total = grad_total.to(flat_q.dtype).reshape(q_rows.shape)
        grad_out = grad_out.to(flat_q.dtype).reshape(*q_rows.shape, channels)
        grad_q, grad_k, grad_v = torch.zeros_like(flat_q), torch.zeros_like(flat_k), torch.zeros_like(flat_v)
        num_dst, num_src = q_rows.size(-1), kv_rows.size(-1)
        with torch.autocast(device_type=flat_q.device.type, enabled=False):
            scaled_q = flat_q * LOG2_E
            for chunk in _chunks(q_rows.size(0), 2 * num_dst * num_src * flat_q.element_size(), ctx.chunk_bytes):
                queries, keys = _rows(flat_q, q_rows[chunk]), _rows(flat_k, kv_rows[chunk])
                scores = torch.baddbmm(bias[chunk], _rows(scaled_q, q_rows[chunk]), keys.transpose(1, 2))
                weights = scores.sub_(shift[chunk].unsqueeze(-1)).exp2_()
                values, gradient = _rows(flat_v, kv_rows[chunk]), grad_out[chunk]
                grad_v.index_add_(0, kv_rows[chunk].flatten(),
                                  torch.bmm(weights.transpose(1, 2), gradient).view(-1, channels))
                # d exp2(s log2 e) / ds is the weight itself: the base-2 factors cancel.
                grad_scores = torch.baddbmm(grad_total[chunk].unsqueeze(-1), gradient, values.transpose(1, 2))
                grad_scores.mul_(weights)
                grad_q.index_add_(0, q_rows[chunk].flatten(), torch.bmm(grad_scores, keys).view(-1, keys.size(-1)))
                grad_k.index_add_(0, kv_rows[chunk].flatten(),
                                  torch.bmm(grad_scores.transpose(1, 2), queries).view(-1, keys.size(-1)))
        return _input_gradients(ctx, (grad_q, grad_k, grad_v), 4)


def bipartite_gat(src_logit: Tensor, dst_logit: Tensor, table: Tensor, index: Tensor, src_valid: Tensor,
                  dst_valid: Tensor, negative_slope: float, rules: KernelRules) -> tuple[Tensor, Tensor, Tensor]:
    """Softmax sums of complete bipartite GAT blocks of one shape, head-first: ``[H, R, B, L]``
    logits, the values ``table[:, index]`` (``[H, S, C]`` and ``[R, B, L]``) and ``[R, B, L]``
    validity masks in, ``(shift, total, out)`` out (``shift`` is ``-inf`` at padding and where a
    sample has no sources); the kernel is chosen by ``rules``."""
    kernel = SortedBlockAttention if src_logit.size(-1) >= rules.sorted_min_block else BlockAttention
    b = src_logit.masked_fill(~src_valid, float("-inf")).contiguous()
    shift, total, out = kernel.apply(dst_logit.contiguous(), b, table, index, negative_slope, rules.chunk_bytes)
    present = dst_valid & src_valid.any(-1, keepdim=True)
    return shift.masked_fill(~present, float("-inf")), total, out


def sorted_bipartite_gat(src_logit: Tensor, dst_logit: Tensor, values: Tensor, src_valid: Tensor,
                         dst_valid: Tensor, negative_slope: float) -> tuple[Tensor, Tensor, Tensor]:
    """:class:`SortedBlockAttention` on ``[R, B, L, H]`` logits and ``[R, B, L, H, C]`` values with
    ``[R, B, L]`` validity masks: ``(shift, total, out)`` in the same layout."""
    R, B, L, H = src_logit.shape
    table = values.permute(3, 0, 1, 2, 4).reshape(H, R * B * L, values.size(-1))
    index = torch.arange(R * B * L, device=values.device).view(R, B, L)
    shift, total, out = bipartite_gat(src_logit.permute(3, 0, 1, 2), dst_logit.permute(3, 0, 1, 2), table, index,
                                      src_valid, dst_valid, negative_slope, KernelRules(sorted_min_block=1))
    return shift.permute(1, 2, 3, 0), total.permute(1, 2, 3, 0), out.permute(1, 2, 3, 0, 4)


def gat_block_sums(graph: FlatGraph, src_logits: Tensor, dst_logits: Tensor, values: Tensor, self_loops: bool,
                   negative_slope: float, rules: KernelRules) -> list[BlockSums]:
    """GAT attention over every complete bipartite relation, a group of equal shapes at a time
    (:func:`block_groups`): per source row logits ``[num_source_rows, H]``, per group row logits
    ``[num_group_rows, H]`` and values ``[H, num_source_rows, C]`` in."""
    sums = []
    for blocks in block_groups(graph, self_loops):
        src, dst = src_logits[blocks.src_row].permute(3, 0, 1, 2), dst_logits[blocks.dst_group_row].permute(3, 0, 1, 2)
        sums.append(BlockSums(blocks, *bipartite_gat(src, dst, values, blocks.src_row, blocks.src_valid,
                                                     blocks.dst_valid, negative_slope, rules)))
    return sums


def hgt_block_sums(graph: FlatGraph, queries: Tensor, keys: Tensor, values: Tensor, rules: KernelRules
                   ) -> list[BlockSums]:
    """Dot-product attention over every complete bipartite relation, a group of equal shapes at a
    time: queries ``[H, num_nodes, D]`` (scaled), keys and values ``[H, num_source_rows, D]`` in."""
    sums = []
    for blocks in block_groups(graph):
        shift, total, out = DotBlockAttention.apply(queries, keys, values, blocks.dst_node, blocks.src_row,
                                                    blocks.src_valid, rules.chunk_bytes)
        present = blocks.dst_valid & blocks.src_valid.any(-1, keepdim=True)
        sums.append(BlockSums(blocks, shift.masked_fill(~present, float("-inf")), total, out))
    return sums
