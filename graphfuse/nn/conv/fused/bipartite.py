r"""GAT attention over complete bipartite blocks without per-edge tensors in autograd.

A complete bipartite relation of a sample is a dense block of GAT scores
:math:`\mathrm{LeakyReLU}(a_i + b_j)` (destination logit plus source logit). Two exact ways to
reduce it to per-destination softmax sums, chosen by block size (:class:`KernelRules`
``sorted_min_block``):

* :class:`BlockAttention`: the whole block in a few in-place passes and two batched matmuls,
  with a hand-written backward that keeps only the attention weights (autograd would keep five
  block-sized tensors and make twice the passes);
* :func:`sorted_bipartite_gat`: :math:`O((n_s + n_d) \log n_s)` per block using the piecewise
  linear score, for large blocks.

Both return ``(shift, total, out)`` as :func:`relational_attention` takes them as ``dense_parts``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from graphfuse.nn.conv.fused.rules import KernelRules

LOG2_E = math.log2(math.e)


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
        # One dtype for the block (the widest of the inputs), computed as written even under autocast.
        ctx.dtypes = (a.dtype, b.dtype, table.dtype)
        ctx.negative_slope, ctx.chunk_bytes = negative_slope, chunk_bytes
        dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), table.dtype)
        a, b, table = a.to(dtype), b.to(dtype), table.to(dtype)
        heads, channels = table.size(0), table.size(-1)
        # Row of the flattened [H * S, C] table for every (head, relation, sample, source).
        rows = (index.unsqueeze(0) + table.size(1) * torch.arange(heads, device=index.device).view(-1, 1, 1, 1))
        flat_a, flat_b, rows = a.reshape(-1, a.size(-1)), b.reshape(-1, b.size(-1)), rows.reshape(-1, b.size(-1))
        flat_table = table.reshape(-1, channels)
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
        ctx.shape = a.shape, b.shape, table.shape
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
        (a_shape, b_shape, table_shape), dtypes = ctx.shape, ctx.dtypes
        grads = (grad_a.view(a_shape), grad_b.view(b_shape), grad_table.view(table_shape))
        return (*(grad.to(dtype) for grad, dtype in zip(grads, dtypes, strict=True)), None, None, None)


def _rows(table: Tensor, rows: Tensor) -> Tensor:
    """``table[rows]`` for a 2-D ``table``, copied row by row (advanced indexing copies per element)."""
    return table.index_select(0, rows.flatten()).view(*rows.shape, table.size(-1))


def _chunks(count: int, bytes_per_item: int, chunk_bytes: int) -> list[slice]:
    size = max(1, chunk_bytes // max(bytes_per_item, 1))
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def bipartite_gat(src_logit: Tensor, dst_logit: Tensor, table: Tensor, index: Tensor, src_valid: Tensor,
                  dst_valid: Tensor, negative_slope: float, rules: KernelRules) -> tuple[Tensor, Tensor, Tensor]:
    """``dense_parts`` of complete bipartite GAT blocks, head-first: ``[H, R, B, L]`` logits, the
    values ``table[:, index]`` (``[H, S, C]`` and ``[R, B, L]``) and ``[R, B, L]`` validity masks
    in, ``(shift, total, out)`` out (``shift`` is ``-inf`` at padding and where a sample has no
    sources); the kernel is chosen by ``rules``."""
    if src_logit.size(-1) >= rules.sorted_min_block:
        shift, total, out = sorted_bipartite_gat(src_logit.permute(1, 2, 3, 0), dst_logit.permute(1, 2, 3, 0),
                                                 table[:, index].permute(1, 2, 3, 0, 4), src_valid, dst_valid,
                                                 negative_slope)
        return shift.permute(3, 0, 1, 2), total.permute(3, 0, 1, 2), out.permute(3, 0, 1, 2, 4)
    b = src_logit.masked_fill(~src_valid, float("-inf")).contiguous()
    shift, total, out = BlockAttention.apply(dst_logit.contiguous(), b, table, index, negative_slope,
                                             rules.chunk_bytes)
    present = dst_valid & src_valid.any(-1, keepdim=True)
    return shift.masked_fill(~present, float("-inf")), total, out


def sorted_bipartite_gat(src_logit: Tensor, dst_logit: Tensor, values: Tensor, src_valid: Tensor,
                           dst_valid: Tensor, negative_slope: float) -> tuple[Tensor, Tensor, Tensor]:
    r"""GAT attention over complete bipartite blocks in :math:`O((n_s + n_d) \log n_s)` per block
    instead of :math:`O(n_s n_d)`.

    The score :math:`\mathrm{LeakyReLU}(a_i + b_j)` is :math:`a_i + b_j` where
    :math:`b_j \ge -a_i` and :math:`\lambda (a_i + b_j)` elsewhere, so
    :math:`e^{\text{score}}` factorises on each side of the threshold. With the sources sorted by
    :math:`b_j`, the sources above a destination's threshold are a suffix: suffix and prefix sums
    of :math:`e^{b_j} \mathbf{v}_j` and :math:`e^{\lambda b_j} \mathbf{v}_j` give every
    destination's softmax numerator and denominator with one binary search.

    Args:
        src_logit, dst_logit: ``[R, B, L, H]`` logits :math:`b_j` of sources and :math:`a_i` of
            destinations; values ``[R, B, L, H, C]``; validity masks ``[R, B, L]``.

    Returns:
        ``(shift, total, out)`` as :func:`relational_attention` takes them as ``dense_parts``.
    """
    minus_inf = torch.finfo(src_logit.dtype).min
    src_logit = src_logit.masked_fill(~src_valid.unsqueeze(-1), float("-inf"))
    top = src_logit.detach().amax(2, keepdim=True)  # [R, B, 1, H]; -inf when the sample has no sources
    has_sources = torch.isfinite(top)
    top = torch.where(has_sources, top, torch.zeros_like(top))
    order = torch.argsort(src_logit.detach(), dim=2)
    sorted_logit = torch.gather(src_logit, 2, order)
    sorted_values = torch.gather(values, 2, order.unsqueeze(-1).expand_as(values))
    valid = torch.isfinite(sorted_logit)
    relative = torch.where(valid, sorted_logit - top, torch.zeros_like(sorted_logit))
    upper = torch.exp(relative) * valid  # e^{b_j - top}, at most 1
    lower = torch.exp(negative_slope * relative) * valid
    # Suffix sums of the upper branch and prefix sums of the lower one, with a zero row at the end /
    # start so that index k means "sources from k on" / "sources before k".
    zero_w, zero_v = upper[:, :, :1].mul(0), sorted_values[:, :, :1].mul(0)
    upper_v = torch.cat([torch.flip(torch.cumsum(torch.flip(upper.unsqueeze(-1) * sorted_values, [2]), 2), [2]),
                         zero_v], 2)
    upper_w = torch.cat([torch.flip(torch.cumsum(torch.flip(upper, [2]), 2), [2]), zero_w], 2)
    lower_v = torch.cat([zero_v, torch.cumsum(lower.unsqueeze(-1) * sorted_values, 2)], 2)
    lower_w = torch.cat([zero_w, torch.cumsum(lower, 2)], 2)
    # Sources j >= k take the upper branch: b_j >= -a_i. -inf (padding) sorts first and stays below.
    keys = torch.where(valid, sorted_logit, torch.full_like(sorted_logit, minus_inf)).detach()
    split = torch.searchsorted(keys.permute(0, 1, 3, 2).contiguous(),
                               (-dst_logit.detach()).permute(0, 1, 3, 2).contiguous()).permute(0, 1, 3, 2)
    reach = dst_logit + top  # the best score's argument for each destination
    shift = F.leaky_relu(reach, negative_slope).detach()
    upper_scale = torch.exp(reach - shift)
    lower_scale = torch.exp(negative_slope * reach - shift)
    total = (upper_scale * torch.gather(upper_w, 2, split) + lower_scale * torch.gather(lower_w, 2, split))
    index = split.unsqueeze(-1).expand(*split.shape, values.size(-1))
    out = (upper_scale.unsqueeze(-1) * torch.gather(upper_v, 2, index)
           + lower_scale.unsqueeze(-1) * torch.gather(lower_v, 2, index))
    present = dst_valid.unsqueeze(-1) & has_sources
    shift = shift.masked_fill(~present, float("-inf"))
    return shift, total * present, out * present.unsqueeze(-1)
