"""The complete bipartite block kernels against a plain masked softmax over the whole block: values
and gradients (float64 gradcheck), several chunks, padding, blocks without sources, bf16 autocast."""
import pytest
import torch
import torch.nn.functional as F

from graphfuse.nn import FlatGraph
from graphfuse.nn.conv.fused.bipartite import (
    BlockAttention,
    DotBlockAttention,
    GATBlocks,
    SortedBlockAttention,
    block_groups,
)

H, R, B, N, S, C = 2, 2, 3, 7, 9, 3


def inputs(dtype=torch.float64, seed=0, num_src=5, num_dst=4):
    """Head-first tables and ``[R, B, L]`` indices with padding: sample 1 of relation 0 has no
    sources, sample 2 one source, and destination slots past each sample's count are padding."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)

    src_index = torch.randint(0, S, (R, B, num_src), generator=generator)
    dst_index = torch.randint(0, N, (R, B, num_dst), generator=generator)
    src_valid = torch.ones(R, B, num_src, dtype=torch.bool)
    src_valid[0, 1] = False
    src_valid[:, 2, 1:] = False
    dst_valid = torch.ones(R, B, num_dst, dtype=torch.bool)
    dst_valid[1, 0, 2:] = False
    return randn, src_index, dst_index, src_valid, dst_valid


def reference_sums(scores, values, src_valid):
    """``(logsumexp, normalised out)`` of ``[H, R, B, L_dst, L_src]`` scores over the valid sources."""
    scores = scores.masked_fill(~src_valid.unsqueeze(-2), float("-inf"))
    return torch.logsumexp(scores, -1), torch.softmax(scores, -1) @ values


def softmax_of(result, present):
    """What a kernel's ``(shift, total, out)`` stand for, whatever the shift: the logsumexp and the
    softmax-weighted values of the destinations with sources."""
    shift, total, out = (part[present] for part in result)
    return shift + total.log(), out / total.unsqueeze(-1)


def assert_sums_close(result, expected, present):
    for value, reference in zip(softmax_of(result, present), expected, strict=True):
        torch.testing.assert_close(value, reference[present])


@pytest.mark.parametrize("kernel", [BlockAttention, SortedBlockAttention], ids=lambda k: k.__name__)
@pytest.mark.parametrize("chunk_bytes", [1, 1 << 20])
def test_gat_block_kernels_equal_a_dense_softmax(kernel, chunk_bytes):
    randn, src_index, _, src_valid, dst_valid = inputs()
    a, b, table = randn(H, R, B, 4), randn(H, R, B, 5), randn(H, S, C)
    b = b.masked_fill(~src_valid, float("-inf"))
    slope = 0.2
    result = kernel.apply(a, b, table, src_index, slope, chunk_bytes)
    scores = F.leaky_relu(a.unsqueeze(-1) + b.unsqueeze(-2), slope)
    present = src_valid.any(-1, keepdim=True).expand_as(dst_valid).unsqueeze(0).expand_as(a)
    assert_sums_close(result, reference_sums(scores, table[:, src_index], src_valid), present)


@pytest.mark.parametrize("kernel", [BlockAttention, SortedBlockAttention], ids=lambda k: k.__name__)
def test_gat_block_kernels_gradcheck(kernel):
    randn, src_index, _, src_valid, _ = inputs()
    a, b, table = randn(H, R, B, 4), randn(H, R, B, 5), randn(H, S, C)
    present = src_valid.any(-1, keepdim=True).expand(R, B, 4).unsqueeze(0).expand_as(a)

    def sums(a, b, table):
        return softmax_of(kernel.apply(a, b.masked_fill(~src_valid, float("-inf")), table, src_index, 0.2, 64),
                          present)

    assert torch.autograd.gradcheck(sums, (a.requires_grad_(), b.requires_grad_(), table.requires_grad_()))


@pytest.mark.parametrize("chunk_bytes", [1, 1 << 20])
def test_dot_block_kernel_equals_a_dense_softmax(chunk_bytes):
    randn, src_index, dst_index, src_valid, _ = inputs()
    queries, keys, values = randn(H, N, C), randn(H, S, C), randn(H, S, C)
    result = DotBlockAttention.apply(queries, keys, values, chunk_bytes, dst_index, src_index, src_valid)
    scores = queries[:, dst_index] @ keys[:, src_index].transpose(-1, -2)
    present = src_valid.any(-1, keepdim=True).expand_as(dst_index).unsqueeze(0).expand(H, -1, -1, -1)
    assert_sums_close(result, reference_sums(scores, values[:, src_index], src_valid), present)
    assert bool((result[0][~present] == 0).all())  # the shift where a block has no sources


def test_dot_block_kernel_gradcheck():
    randn, src_index, dst_index, src_valid, _ = inputs()
    tables = (randn(H, N, C).requires_grad_(), randn(H, S, C).requires_grad_(), randn(H, S, C).requires_grad_())
    present = src_valid.any(-1, keepdim=True).expand_as(dst_index).unsqueeze(0).expand(H, -1, -1, -1)

    def sums(*tables):
        return softmax_of(DotBlockAttention.apply(*tables, 64, dst_index, src_index, src_valid), present)

    assert torch.autograd.gradcheck(sums, tables)


def test_block_kernels_refuse_second_derivatives_clearly():
    """GAT's blocks (through GATBlocks) and HGT's dot-product blocks write their gradients in place."""
    randn, src_index, dst_index, src_valid, _ = inputs()
    a, b, table = randn(H, R, B, 4), randn(H, R, B, 5), randn(H, S, C).requires_grad_()
    _, total, out = BlockAttention.apply(a, b.masked_fill(~src_valid, float("-inf")), table, src_index, 0.2, 64)
    with pytest.raises(RuntimeError, match="GATBlocks kernel is differentiable once.*path='reference'"):
        torch.autograd.grad(out.square().sum(), table, create_graph=True)
    tables = (randn(H, N, C).requires_grad_(), randn(H, S, C), randn(H, S, C))
    _, total, out = DotBlockAttention.apply(*tables, 64, dst_index, src_index, src_valid)
    with pytest.raises(RuntimeError, match="DotBlockAttention kernel is differentiable once.*path='reference'"):
        torch.autograd.grad(out.square().sum(), tables[0], create_graph=True)


def test_groups_of_blocks_share_their_tables():
    """Several groups of blocks of different shapes in one call (each GAT group by its own kernel):
    the shared tables' gradients add up over the groups."""
    randn, src_index, dst_index, src_valid, _ = inputs()
    _, src_other, dst_other, valid_other, _ = inputs(seed=1, num_src=7, num_dst=3)
    present = [valid.any(-1, keepdim=True).expand(*valid.shape[:2], size).unsqueeze(0).expand(H, -1, -1, -1)
               for valid, size in ((src_valid, 4), (valid_other, 3))]
    logits = [randn(H, R, B, 4), randn(H, R, B, 5), randn(H, R, B, 3), randn(H, R, B, 7)]
    table = randn(H, S, C)

    def gat(table, a, b, a_other, b_other):
        outputs = GATBlocks.apply(table, 0.2, 64, (BlockAttention, SortedBlockAttention),
                                  a, b.masked_fill(~src_valid, float("-inf")), src_index,
                                  a_other, b_other.masked_fill(~valid_other, float("-inf")), src_other)
        return (*softmax_of(outputs[:3], present[0]), *softmax_of(outputs[3:], present[1]))

    assert torch.autograd.gradcheck(gat, (table.requires_grad_(), *(x.requires_grad_() for x in logits)))
    tables = (randn(H, N, C).requires_grad_(), randn(H, S, C).requires_grad_(), randn(H, S, C).requires_grad_())

    def dot(*tables):
        outputs = DotBlockAttention.apply(*tables, 64, dst_index, src_index, src_valid, dst_other, src_other,
                                          valid_other)
        return (*softmax_of(outputs[:3], present[0]), *softmax_of(outputs[3:], present[1]))

    assert torch.autograd.gradcheck(dot, tables)


def test_dot_block_kernel_under_bf16_autocast():
    """Low-precision tables are computed in their widest dtype and the gradients come back in theirs."""
    randn, src_index, dst_index, src_valid, _ = inputs(torch.float32, num_src=40, num_dst=30)
    tables = [randn(H, N, C), randn(H, S, C), randn(H, S, C)]
    reference = DotBlockAttention.apply(*tables, 1 << 20, dst_index, src_index, src_valid)
    low = [t.bfloat16().requires_grad_() for t in tables]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        shift, total, out = DotBlockAttention.apply(*low, 1 << 20, dst_index, src_index, src_valid)
    assert out.dtype == torch.bfloat16
    present = src_valid.any(-1, keepdim=True).expand_as(dst_index).unsqueeze(0).expand(H, -1, -1, -1)
    normalised = (out.float() / total.float().unsqueeze(-1))[present]
    expected = (reference[2] / reference[1].unsqueeze(-1))[present]
    assert (normalised - expected).norm() / expected.norm() < 0.05
    out.float().sum().backward()
    assert all(t.grad.dtype == torch.bfloat16 and torch.isfinite(t.grad).all() for t in low)


def test_block_groups_cut_each_relation_to_its_own_node_types(batch, metadata):
    """Text (5 tokens), image (16 patches) and audio blocks each as long as their own two node types."""
    graph = FlatGraph.from_batch(batch, metadata)
    blocks = graph.dense_blocks()
    groups = block_groups(graph)
    assert sorted(r for group in groups for r in group.relations) == sorted(blocks.relations)
    schema, sizes = graph.schema, graph.type_block_size
    for group in groups:
        for i, r in enumerate(group.relations):
            position = blocks.relations.index(r)
            src, dst = sizes[schema.src_type[r]], sizes[schema.dst_type[r]]
            assert group.src_row.shape[-1] == src and group.dst_node.shape[-1] == dst
            assert torch.equal(group.src_row[i], blocks.src_row[position, :, :src])
            assert torch.equal(group.dst_valid[i], blocks.dst_valid[position, :, :dst])
            assert not blocks.src_valid[position, :, src:].any() and not blocks.dst_valid[position, :, dst:].any()
    assert len(groups) > 1 and block_groups(graph) is groups  # cached on the graph
