r"""Attention over complete bipartite blocks without per-edge tensors in autograd.

A complete bipartite relation of a sample is a dense block of scores, reduced here to
per-destination softmax sums ``(shift, total, out)`` (:class:`BlockSums`, as
:func:`~graphfuse.nn.conv.fused.aggregate.relational_attention` merges them with the sparse
edges' softmax) with hand-written backwards that keep only the inputs and recompute the rest chunk by chunk:

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

from graphfuse.nn.conv.fused.first_order import require_first_order
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
    """The graph's dense blocks split into groups of relations whose blocks have one shape, each
    cut to the longest sample of its own source and destination node types; what
    ``graph.dense_blocks(self_loops)`` gives, regrouped, and cached on the graph."""
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


def _rows(table: Tensor, rows: Tensor) -> Tensor:
    """``table[rows]`` for a 2-D ``table``, copied row by row (advanced indexing copies per element)."""
    return table.index_select(0, rows.flatten()).view(*rows.shape, table.size(-1))


def _chunks(count: int, bytes_per_item: int, chunk_bytes: int) -> list[slice]:
    size = max(1, chunk_bytes // max(bytes_per_item, 1))
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def _compute_dtype(*tensors: Tensor) -> torch.dtype:
    """The widest dtype of ``tensors``: the blocks are computed in it, as written, even under autocast."""
    dtype = tensors[0].dtype
    for tensor in tensors[1:]:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


class GATBlocks(torch.autograd.Function):
    """GAT softmax sums of several groups of complete bipartite blocks over one value table, each
    group by its own kernel (:class:`BlockAttention` or :class:`SortedBlockAttention`):
    ``GATBlocks.apply(table, negative_slope, chunk_bytes, kernels, a_0, b_0, index_0, a_1, ...)``
    gives ``(shift_0, total_0, out_0, shift_1, ...)``, each group as :class:`BlockAttention`
    describes. One autograd node for all groups, so the table's gradient is allocated once.
    """

    @staticmethod
    def forward(ctx, table: Tensor, negative_slope: float, chunk_bytes: int, kernels: tuple, *groups: Tensor):
        inputs = [groups[i:i + 3] for i in range(0, len(groups), 3)]
        dtype = _compute_dtype(table, *(x for a, b, _ in inputs for x in (a, b)))
        heads, channels = table.size(0), table.size(-1)
        flat_table = table.to(dtype).reshape(-1, channels)
        ctx.kernels, ctx.settings = kernels, (negative_slope, chunk_bytes)
        ctx.table = table.shape, table.dtype
        ctx.logits = [(a.shape, a.dtype, b.shape, b.dtype) for a, b, _ in inputs]
        outputs, saved, ctx.counts = [], [flat_table], []
        with torch.autocast(device_type=table.device.type, enabled=False):
            for kernel, (a, b, index) in zip(kernels, inputs, strict=True):
                shift, total, out, kept = kernel.sums(a.to(dtype).reshape(-1, a.size(-1)),
                                                      b.to(dtype).reshape(-1, b.size(-1)), flat_table,
                                                      _head_rows(index, heads, table.size(1)), negative_slope,
                                                      chunk_bytes)
                outputs += [shift.view(a.shape), total.view(a.shape), out.view(*a.shape, channels)]
                saved += kept
                ctx.counts.append(len(kept))
        ctx.save_for_backward(*saved)
        ctx.mark_non_differentiable(*outputs[0::3])
        return tuple(outputs)

    @staticmethod
    def backward(ctx, *grads: Tensor):
        require_first_order("GATBlocks")
        flat_table, *saved = ctx.saved_tensors
        grad_table = torch.zeros_like(flat_table)
        channels, dtype = flat_table.size(-1), flat_table.dtype
        result, start = [], 0
        with torch.autocast(device_type=flat_table.device.type, enabled=False):
            for g, kernel in enumerate(ctx.kernels):
                kept, start = saved[start:start + ctx.counts[g]], start + ctx.counts[g]
                a_shape, a_dtype, b_shape, b_dtype = ctx.logits[g]
                rows = a_shape.numel() // a_shape[-1]
                grad_total = grads[3 * g + 1].to(dtype).reshape(rows, -1)
                grad_out = grads[3 * g + 2].to(dtype).reshape(rows, -1, channels)
                grad_a, grad_b = kernel.gradients(flat_table, grad_table, kept, grad_total, grad_out, *ctx.settings)
                result += [grad_a.view(a_shape).to(a_dtype), grad_b.view(b_shape).to(b_dtype), None]
        shape, table_dtype = ctx.table
        return (grad_table.view(shape).to(table_dtype), None, None, None, *result)


class _GATKernel:
    """A GAT block kernel: ``sums`` and ``gradients`` of one group for :class:`GATBlocks`, and
    ``apply`` for one group alone."""

    @classmethod
    def apply(cls, a: Tensor, b: Tensor, table: Tensor, index: Tensor, negative_slope: float, chunk_bytes: int):
        return GATBlocks.apply(table, negative_slope, chunk_bytes, (cls,), a, b, index)


class BlockAttention(_GATKernel):
    """Softmax sums of GAT score blocks: ``[H, R, B, L_d]`` logits ``a``, ``[H, R, B, L_s]`` logits
    ``b`` (``-inf`` for padding) and values ``table[h, index[r, b]]`` (``table`` ``[H, S, C]``,
    ``index`` ``[R, B, L_s]``) give the shift ``m``, ``total = sum_j exp(s_ij - m_i)`` and
    ``out = sum_j exp(s_ij - m_i) v_j``: ``BlockAttention.apply(a, b, table, index,
    negative_slope, chunk_bytes)``, differentiable in ``a``, ``b`` and ``table``.

    The whole block in a few in-place passes and two batched matmuls, a chunk of (head, relation,
    sample) blocks at a time, about ``chunk_bytes`` of scores each (:class:`KernelRules`): no
    block-sized tensor of the whole batch is ever held, and the backward recomputes each chunk's
    scores (autograd would keep five block-sized tensors and make twice the passes).
    """

    @staticmethod
    def sums(a: Tensor, b: Tensor, table: Tensor, rows: Tensor, negative_slope: float, chunk_bytes: int):
        """``(shift, total, out, saved)`` of ``[n, L]`` logits, a ``[H * S, C]`` table and its ``[n, L_s]`` rows."""
        channels = table.size(-1)
        # In base-2 units (LeakyReLU commutes with a positive scale): exp2 is several times
        # cheaper than exp on CPU.
        a, b = a * LOG2_E, b * LOG2_E
        top = b.amax(-1, keepdim=True)
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
        # The largest score of each destination, rounded as the scores are (so the largest weight
        # is exactly 1, whatever the logits' magnitude).
        shift = F.leaky_relu(a + top, negative_slope)
        total = a.new_empty(a.shape)
        out = a.new_empty(*a.shape, channels)
        for chunk in _chunks(a.size(0), a.size(-1) * b.size(-1) * a.element_size(), chunk_bytes):
            weights = BlockAttention._weights(a[chunk], b[chunk], shift[chunk], negative_slope)
            torch.sum(weights, -1, out=total[chunk])
            torch.bmm(weights, _rows(table, rows[chunk]), out=out[chunk])
        return shift / LOG2_E, total, out, (a, b, rows, shift)

    @staticmethod
    def _weights(a: Tensor, b: Tensor, shift: Tensor, negative_slope: float, keep_scores: bool = False):
        """``exp2(LeakyReLU(a_i + b_j) - shift_i)`` of base-2 logits (and the raw scores, for their sign)."""
        scores = a.unsqueeze(-1) + b.unsqueeze(-2)
        weights = F.leaky_relu(scores, negative_slope, inplace=not keep_scores)
        weights = weights.sub_(shift.unsqueeze(-1)).exp2_()
        return (weights, scores) if keep_scores else weights

    @staticmethod
    def gradients(table: Tensor, grad_table: Tensor, saved: tuple, grad_total: Tensor, grad_out: Tensor,
                  negative_slope: float, chunk_bytes: int) -> tuple[Tensor, Tensor]:
        """The logits' gradients; the table's is added to ``grad_table``."""
        a, b, rows, shift = saved
        channels = table.size(-1)
        grad_a, grad_b = torch.empty_like(a), torch.empty_like(b)
        for chunk in _chunks(a.size(0), a.size(-1) * b.size(-1) * a.element_size(), chunk_bytes):
            weights, scores = BlockAttention._weights(a[chunk], b[chunk], shift[chunk], negative_slope,
                                                      keep_scores=True)
            gradient = grad_out[chunk]
            grad_table.index_add_(0, rows[chunk].flatten(),
                                  torch.bmm(weights.transpose(1, 2), gradient).view(-1, channels))
            grad_weights = torch.bmm(gradient, _rows(table, rows[chunk]).transpose(1, 2))
            grad_weights.add_(grad_total[chunk].unsqueeze(-1)).mul_(weights)
            # Through LeakyReLU in one fused pass (its slope where the raw score was negative). The
            # base-2 factors cancel: d exp2(s log2 e) / ds is the weight itself.
            grad_scores = torch.ops.aten.leaky_relu_backward(grad_weights, scores, negative_slope, False)
            torch.sum(grad_scores, -1, out=grad_a[chunk])
            torch.sum(grad_scores, -2, out=grad_b[chunk])
        return grad_a, grad_b


class SortedBlockAttention(_GATKernel):
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
    def sums(a: Tensor, b: Tensor, table: Tensor, rows: Tensor, negative_slope: float, chunk_bytes: int):
        """``(shift, total, out, saved)`` as :meth:`BlockAttention.sums`."""
        channels = table.size(-1)
        top = b.amax(-1, keepdim=True)  # -inf where a block has no sources
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
        order = torch.argsort(b, dim=-1)  # padding (-inf) first
        sorted_b = torch.gather(b, 1, order)
        keys = torch.where(torch.isfinite(sorted_b), sorted_b, torch.full_like(sorted_b, torch.finfo(b.dtype).min))
        # Sources from split on take the upper branch: b_j >= -a_i.
        split = torch.searchsorted(keys, -a)
        reach = a + top  # the best score's argument for each destination
        shift = F.leaky_relu(reach, negative_slope)
        total = a.new_empty(a.shape)
        out = a.new_empty(*a.shape, channels)
        for chunk in _chunks(a.size(0), (b.size(-1) + 1) * (channels + 1) * 6 * a.element_size(), chunk_bytes):
            sums = _SortedSums(sorted_b[chunk], top[chunk], table, rows[chunk], order[chunk], negative_slope)
            upper, lower = _scales(reach[chunk], shift[chunk], negative_slope)
            at = split[chunk]
            total[chunk] = upper * sums.upper_w.gather(1, at) + lower * sums.lower_w.gather(1, at)
            at = at.unsqueeze(-1).expand(-1, -1, channels)
            out[chunk] = (upper.unsqueeze(-1) * sums.upper_v.gather(1, at)
                          + lower.unsqueeze(-1) * sums.lower_v.gather(1, at))
        return shift, total, out, (a, rows, top, order, sorted_b, split, shift)

    @staticmethod
    def gradients(table: Tensor, grad_table: Tensor, saved: tuple, grad_total: Tensor, grad_out: Tensor,
                  negative_slope: float, chunk_bytes: int) -> tuple[Tensor, Tensor]:
        """The logits' gradients; the table's is added to ``grad_table``."""
        a, rows, top, order, sorted_b, split, shift = saved
        slope, channels, num_sources = negative_slope, table.size(-1), sorted_b.size(-1)
        grad_a, grad_b = torch.empty_like(a), torch.empty_like(sorted_b)
        for chunk in _chunks(a.size(0), (num_sources + 1) * (channels + 1) * 8 * a.element_size(), chunk_bytes):
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
        return grad_a, torch.empty_like(grad_b).scatter_(1, order, grad_b)


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
    """Softmax sums of dot-product score blocks (HGT's), flash-attention style, for several groups
    of blocks over shared tables: ``DotBlockAttention.apply(q_table, k_table, v_table,
    chunk_bytes, q_index_0, kv_index_0, src_valid_0, q_index_1, ...)`` with ``[H, N, D]`` queries,
    ``[H, S, D]`` keys and values and per group ``[R, B, L]`` indices and source mask gives, per
    group, ``shift = max_j dot(q_i, k_j)``, ``total = sum_j exp(dot(q_i, k_j) - shift_i)`` and
    ``out = sum_j exp(dot(q_i, k_j) - shift_i) v_j`` (``[H, R, B, L_dst(, D)]``; ``shift`` is 0 where a
    block has no sources).

    Blocks are processed a chunk at a time, about ``chunk_bytes`` of scores each; the backward
    recomputes each chunk's scores, so no block-sized tensor outlives its chunk, and the tables'
    gradients are allocated once for all groups.
    """

    @staticmethod
    def forward(ctx, q_table: Tensor, k_table: Tensor, v_table: Tensor, chunk_bytes: int, *groups: Tensor):
        ctx.tables = [(t.shape, t.dtype) for t in (q_table, k_table, v_table)]
        ctx.chunk_bytes = chunk_bytes
        dtype = _compute_dtype(q_table, k_table, v_table)
        heads, channels = q_table.size(0), v_table.size(-1)
        flat_q, flat_k, flat_v = (t.to(dtype).reshape(-1, t.size(-1)) for t in (q_table, k_table, v_table))
        outputs, saved = [], [flat_q, flat_k, flat_v]
        with torch.autocast(device_type=flat_q.device.type, enabled=False):
            scaled_q = flat_q * LOG2_E  # scores in base 2: exp2 is several times cheaper than exp on CPU
            for g in range(0, len(groups), 3):
                q_index, kv_index, src_valid = groups[g:g + 3]
                q_rows = _head_rows(q_index, heads, q_table.size(1))
                kv_rows = _head_rows(kv_index, heads, k_table.size(1))
                # 0 for a source, -inf for padding, added to the scores by the matmul itself.
                bias = torch.zeros(src_valid.shape, dtype=dtype, device=src_valid.device).masked_fill_(
                    ~src_valid, float("-inf"))
                bias = bias.unsqueeze(0).expand(heads, *bias.shape).reshape(-1, 1, bias.size(-1))
                shift = flat_q.new_empty(q_rows.shape)
                total = flat_q.new_empty(q_rows.shape)
                out = flat_q.new_empty(*q_rows.shape, channels)
                for chunk in _chunks(q_rows.size(0), q_rows.size(-1) * kv_rows.size(-1) * flat_q.element_size(),
                                     chunk_bytes):
                    scores = torch.baddbmm(bias[chunk], _rows(scaled_q, q_rows[chunk]),
                                           _rows(flat_k, kv_rows[chunk]).transpose(1, 2))
                    top = scores.amax(-1)
                    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
                    weights = scores.sub_(top.unsqueeze(-1)).exp2_()
                    shift[chunk] = top
                    torch.sum(weights, -1, out=total[chunk])
                    torch.bmm(weights, _rows(flat_v, kv_rows[chunk]), out=out[chunk])
                shape = (heads, *q_index.shape)
                outputs += [(shift * LN_2).view(shape), total.view(shape), out.view(*shape, channels)]
                saved += [q_rows, kv_rows, bias, shift]
        ctx.save_for_backward(*saved)
        ctx.mark_non_differentiable(*outputs[0::3])
        return tuple(outputs)

    @staticmethod
    def backward(ctx, *grads: Tensor):
        require_first_order("DotBlockAttention")
        flat_q, flat_k, flat_v, *saved = ctx.saved_tensors
        channels = flat_v.size(-1)
        grad_q, grad_k, grad_v = torch.zeros_like(flat_q), torch.zeros_like(flat_k), torch.zeros_like(flat_v)
        with torch.autocast(device_type=flat_q.device.type, enabled=False):
            scaled_q = flat_q * LOG2_E
            for g in range(0, len(saved), 4):
                q_rows, kv_rows, bias, shift = saved[g:g + 4]
                grad_total = grads[3 * (g // 4) + 1].to(flat_q.dtype).reshape(q_rows.shape)
                grad_out = grads[3 * (g // 4) + 2].to(flat_q.dtype).reshape(*q_rows.shape, channels)
                for chunk in _chunks(q_rows.size(0), 2 * q_rows.size(-1) * kv_rows.size(-1) * flat_q.element_size(),
                                     ctx.chunk_bytes):
                    queries, keys = _rows(flat_q, q_rows[chunk]), _rows(flat_k, kv_rows[chunk])
                    scores = torch.baddbmm(bias[chunk], _rows(scaled_q, q_rows[chunk]), keys.transpose(1, 2))
                    weights = scores.sub_(shift[chunk].unsqueeze(-1)).exp2_()
                    values, gradient = _rows(flat_v, kv_rows[chunk]), grad_out[chunk]
                    grad_v.index_add_(0, kv_rows[chunk].flatten(),
                                      torch.bmm(weights.transpose(1, 2), gradient).view(-1, channels))
                    # d exp2(s log2 e) / ds is the weight itself: the base-2 factors cancel.
                    grad_scores = torch.baddbmm(grad_total[chunk].unsqueeze(-1), gradient, values.transpose(1, 2))
                    grad_scores.mul_(weights)
                    grad_q.index_add_(0, q_rows[chunk].flatten(),
                                      torch.bmm(grad_scores, keys).view(-1, keys.size(-1)))
                    grad_k.index_add_(0, kv_rows[chunk].flatten(),
                                      torch.bmm(grad_scores.transpose(1, 2), queries).view(-1, keys.size(-1)))
        grads = (grad.view(shape).to(dtype) for grad, (shape, dtype) in zip((grad_q, grad_k, grad_v), ctx.tables,
                                                                              strict=True))
        return (*grads, None, *(None,) * len(ctx.needs_input_grad[4:]))


def bipartite_gat(src_logit: Tensor, dst_logit: Tensor, table: Tensor, index: Tensor, src_valid: Tensor,
                  dst_valid: Tensor, negative_slope: float, rules: KernelRules) -> tuple[Tensor, Tensor, Tensor]:
    """Softmax sums of complete bipartite GAT blocks of one shape, head-first: ``[H, R, B, L]``
    logits, the values ``table[:, index]`` (``[H, S, C]`` and ``[R, B, L]``) and ``[R, B, L]``
    validity masks in, ``(shift, total, out)`` out (``shift`` is ``-inf`` at padding and where a
    sample has no sources); the kernel is chosen by ``rules``."""
    return _bipartite_gat(table, [(src_logit, dst_logit, index, src_valid, dst_valid)], negative_slope, rules)[0]


def _bipartite_gat(table: Tensor, groups: list[tuple[Tensor, ...]], negative_slope: float, rules: KernelRules
                   ) -> list[tuple[Tensor, Tensor, Tensor]]:
    """:func:`bipartite_gat` of several groups ``(src_logit, dst_logit, index, src_valid,
    dst_valid)`` over one ``table``, in one :class:`GATBlocks` call."""
    kernels, inputs = [], []
    for src_logit, dst_logit, index, src_valid, _ in groups:
        kernels.append(SortedBlockAttention if src_logit.size(-1) >= rules.sorted_min_block else BlockAttention)
        inputs += [dst_logit.contiguous(), src_logit.masked_fill(~src_valid, float("-inf")).contiguous(), index]
    outputs = GATBlocks.apply(table, negative_slope, rules.chunk_bytes, tuple(kernels), *inputs)
    return [_masked(outputs[3 * g:3 * g + 3], src_valid, dst_valid)
            for g, (*_, src_valid, dst_valid) in enumerate(groups)]


def _masked(sums: tuple[Tensor, ...], src_valid: Tensor, dst_valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """A group's ``(shift, total, out)`` with ``shift`` ``-inf`` at padding and where a sample has no sources."""
    shift, total, out = sums
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
    """GAT attention over every complete bipartite relation, each group of equal shapes
    (:func:`block_groups`) by its kernel: per source row logits ``[num_source_rows, H]``, per group
    row logits ``[num_group_rows, H]`` and values ``[H, num_source_rows, C]`` in."""
    groups = block_groups(graph, self_loops)
    inputs = [(src_logits[blocks.src_row].permute(3, 0, 1, 2), dst_logits[blocks.dst_group_row].permute(3, 0, 1, 2),
               blocks.src_row, blocks.src_valid, blocks.dst_valid) for blocks in groups]
    return [BlockSums(blocks, *sums)
            for blocks, sums in zip(groups, _bipartite_gat(values, inputs, negative_slope, rules), strict=True)]


def hgt_block_sums(graph: FlatGraph, queries: Tensor, keys: Tensor, values: Tensor, rules: KernelRules
                   ) -> list[BlockSums]:
    """Dot-product attention over every complete bipartite relation, each group of equal shapes
    (:func:`block_groups`) as its own blocks: queries ``[H, num_nodes, D]`` (scaled), keys and
    values ``[H, num_source_rows, D]`` in."""
    groups = block_groups(graph)
    outputs = DotBlockAttention.apply(queries, keys, values, rules.chunk_bytes,
                                      *(x for blocks in groups for x in (blocks.dst_node, blocks.src_row,
                                                                         blocks.src_valid)))
    return [BlockSums(blocks, *_masked(outputs[3 * g:3 * g + 3], blocks.src_valid, blocks.dst_valid))
            for g, blocks in enumerate(groups)]
