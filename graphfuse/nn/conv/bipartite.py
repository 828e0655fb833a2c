r"""GAT attention over complete bipartite blocks without per-edge tensors in autograd.

A complete bipartite relation of a sample is a dense block of GAT scores
:math:`\mathrm{LeakyReLU}(a_i + b_j)` (destination logit plus source logit). Two exact ways to
reduce it to per-destination softmax sums, chosen by block size:

* :class:`BlockAttention`: the whole block in a few in-place passes and two batched matmuls,
  with a hand-written backward that keeps only the attention weights (autograd would keep five
  block-sized tensors and make twice the passes);
* :func:`sorted_bipartite_gat`: :math:`O((n_s + n_d) \log n_s)` per block using the piecewise
  linear score, for large blocks.

Both return ``(shift, total, out)`` as :func:`relational_attention` takes them as ``dense_parts``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Blocks with at least this many source or destination slots use the sorted path: its cost grows
# with n, the block's with n^2. Measured on the throughput benchmark's CPU (see the README).
SORTED_BLOCK_SIZE = 192


class BlockAttention(torch.autograd.Function):
    """Softmax sums of a GAT score block: ``[R, B, H, L_d]`` logits ``a``, ``[R, B, H, L_s]``
    logits ``b`` (``-inf`` for padding) and values ``[R, B, H, L_s, C]`` give the shift ``m``,
    ``total = sum_j exp(s_ij - m_i)`` and ``out = sum_j exp(s_ij - m_i) v_j``."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, values: Tensor, negative_slope: float):
        # One dtype for the block (the widest of the inputs), computed as written even under autocast.
        ctx.dtypes = (a.dtype, b.dtype, values.dtype)
        dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), values.dtype)
        with torch.autocast(device_type=a.device.type, enabled=False):
            return BlockAttention._forward(ctx, a.to(dtype), b.to(dtype), values.to(dtype), negative_slope)

    @staticmethod
    def _forward(ctx, a: Tensor, b: Tensor, values: Tensor, negative_slope: float):
        top = b.amax(-1, keepdim=True)
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
        shift = F.leaky_relu(a + top, negative_slope)  # the largest score of each destination
        weights = a.unsqueeze(-1) + b.unsqueeze(-2)
        F.leaky_relu(weights, negative_slope, inplace=True)
        weights.sub_(shift.unsqueeze(-1)).exp_()
        total = weights.sum(-1)
        n_dst, n_src = weights.shape[-2:]
        out = torch.bmm(weights.view(-1, n_dst, n_src), values.reshape(-1, n_src, values.size(-1))).view(
            *weights.shape[:-1], values.size(-1))
        ctx.negative_slope = negative_slope
        ctx.save_for_backward(weights, values, shift)
        ctx.mark_non_differentiable(shift)
        return shift, total, out

    @staticmethod
    def backward(ctx, grad_shift, grad_total, grad_out):
        with torch.autocast(device_type=grad_out.device.type, enabled=False):
            grads = BlockAttention._backward(ctx, grad_total, grad_out)
        return (*(grad.to(dtype) for grad, dtype in zip(grads, ctx.dtypes, strict=True)), None)

    @staticmethod
    def _backward(ctx, grad_total, grad_out):
        weights, values, shift = ctx.saved_tensors
        grad_total, grad_out = grad_total.to(weights.dtype), grad_out.to(weights.dtype)
        batch, (n_dst, n_src, channels) = weights.shape[:-2], (*weights.shape[-2:], values.size(-1))
        flat_weights, flat_grad = weights.reshape(-1, n_dst, n_src), grad_out.reshape(-1, n_dst, channels)
        grad_values = torch.bmm(flat_weights.transpose(1, 2), flat_grad).view(*batch, n_src, channels)
        grad_scores = torch.bmm(flat_grad, values.reshape(-1, n_src, channels).transpose(1, 2)).view_as(weights)
        grad_scores.add_(grad_total.unsqueeze(-1))
        grad_scores.mul_(weights)
        # The score was on LeakyReLU's positive side where exp(score - shift) >= exp(-shift).
        slope = ctx.negative_slope
        scale = (weights >= torch.exp(-shift).unsqueeze(-1)).to(weights.dtype).mul_(1 - slope).add_(slope)
        grad_scores.mul_(scale)
        return grad_scores.sum(-1), grad_scores.sum(-2), grad_values


def bipartite_gat(src_logit: Tensor, dst_logit: Tensor, values: Tensor, src_valid: Tensor, dst_valid: Tensor,
                  negative_slope: float) -> tuple[Tensor, Tensor, Tensor]:
    """``dense_parts`` of complete bipartite GAT blocks, head-first: ``[H, R, B, L]`` logits,
    ``[H, R, B, L, C]`` values and ``[R, B, L]`` validity masks in, ``(shift, total, out)`` out
    (``shift`` is ``-inf`` at padding and where a sample has no sources)."""
    if src_logit.size(-1) >= SORTED_BLOCK_SIZE:
        shift, total, out = sorted_bipartite_gat(src_logit.permute(1, 2, 3, 0), dst_logit.permute(1, 2, 3, 0),
                                                 values.permute(1, 2, 3, 0, 4), src_valid, dst_valid,
                                                 negative_slope)
        return shift.permute(3, 0, 1, 2), total.permute(3, 0, 1, 2), out.permute(3, 0, 1, 2, 4)
    b = src_logit.masked_fill(~src_valid, float("-inf")).contiguous()
    shift, total, out = BlockAttention.apply(dst_logit.contiguous(), b, values.contiguous(), negative_slope)
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
