"""The CSR structure the fused kernels share (sorting edges by their rows), the sparse products
written into place, the adjacency product and its transposed CSR, the per-edge attention kernels
(float64 gradcheck) and the node-first output."""
import pytest
import torch

from graphfuse.nn.conv.fused.aggregate import (
    EdgeAttention,
    EdgeLayout,
    EdgeScores,
    NodeFirst,
    SparseAdjacency,
    _compressed,
    _csr,
    _spmm_into,
)


@pytest.mark.parametrize("num_rows", [1, 7, 1000, 40_000, 1 << 16, (1 << 16) + 1, 1 << 20])
def test_compressed_is_the_stable_sort_of_the_rows(num_rows):
    """16- and 32-bit keys sort the rows exactly as the 64-bit stable sort does, rows past int16's
    range included: ties keep their input order."""
    generator = torch.Generator().manual_seed(num_rows)
    rows = torch.cat([torch.randint(0, num_rows, (5000,), generator=generator),
                      torch.tensor([num_rows - 1, 0, (1 << 15) - 1, 1 << 15]).clamp_max(num_rows - 1)])
    order, crow = _compressed(rows, num_rows)
    assert order.dtype == crow.dtype == torch.long
    assert torch.equal(order, torch.argsort(rows, stable=True))
    assert torch.equal(crow, torch.cat([torch.zeros(1, dtype=torch.long),
                                        torch.bincount(rows, minlength=num_rows).cumsum(0)]))


def test_compressed_of_no_rows():
    order, crow = _compressed(torch.zeros(0, dtype=torch.long), 3)
    assert order.numel() == 0 and torch.equal(crow, torch.zeros(4, dtype=torch.long))


def layout(num_groups=6, num_sources=8, num_edges=20, seed=0) -> EdgeLayout:
    """Random edges (duplicates, groups and sources without edges) laid out as ``edge_layout`` does."""
    generator = torch.Generator().manual_seed(seed)
    group = torch.randint(0, num_groups - 1, (num_edges,), generator=generator)
    source = torch.randint(0, num_sources - 1, (num_edges,), generator=generator)
    order, crow = _compressed(group, num_groups)
    col, group = source[order], group[order]
    transposed_order, transposed_crow = _compressed(col, num_sources)
    return EdgeLayout(order, crow, col, group, group, transposed_order, transposed_crow, group[transposed_order],
                      num_groups, num_sources)


@pytest.mark.parametrize("num_edges", [0, 20])
def test_spmm_into_overwrites_what_the_output_held(num_edges):
    """The product replaces the output's contents, NaN included, also in rows without entries."""
    edges = layout(num_edges=num_edges)
    values = torch.randn(num_edges, dtype=torch.float64)
    dense = torch.randn(edges.num_sources, 3, dtype=torch.float64)
    matrix = _csr(edges.crow, edges.col, values, (edges.num_groups, edges.num_sources))
    out = torch.full((edges.num_groups, 3), float("nan"), dtype=torch.float64)
    _spmm_into(out, matrix, dense)
    torch.testing.assert_close(out, matrix.to_dense() @ dense)


def test_edge_attention_and_scores_gradcheck():
    edges = layout()
    weight = torch.randn(2, edges.col.numel(), dtype=torch.float64, requires_grad=True)
    values = torch.randn(2, edges.num_sources, 3, dtype=torch.float64, requires_grad=True)
    queries = torch.randn(2, edges.num_groups, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w, v: EdgeAttention.apply(w, v, edges), (weight, values))
    assert torch.autograd.gradcheck(lambda q, k: EdgeScores.apply(q, k, edges), (queries, values))
    scores = EdgeScores.apply(queries, values, edges)
    torch.testing.assert_close(scores, (queries @ values.transpose(1, 2))[:, edges.group, edges.col])


def test_attention_kernels_refuse_second_derivatives_clearly():
    """Their backwards write in place: create_graph through them names the reference path."""
    edges = layout()
    weight = torch.randn(2, edges.col.numel(), dtype=torch.float64, requires_grad=True)
    values = torch.randn(2, edges.num_sources, 3, dtype=torch.float64, requires_grad=True)
    queries = torch.randn(2, edges.num_groups, 3, dtype=torch.float64, requires_grad=True)
    scale = torch.rand(2, edges.num_groups, dtype=torch.float64, requires_grad=True)
    for kernel, out in [("EdgeAttention", EdgeAttention.apply(weight, values, edges)),
                        ("EdgeScores", EdgeScores.apply(queries, values, edges)),
                        ("NodeFirst", NodeFirst.apply(queries, scale))]:
        with pytest.raises(RuntimeError, match=f"fused {kernel} kernel is differentiable once.*path='reference'"):
            torch.autograd.grad(out.square().sum(), values if kernel != "NodeFirst" else queries, create_graph=True)


def test_node_first_equals_a_scaled_permutation():
    sums = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    scale = torch.rand(3, 5, dtype=torch.float64, requires_grad=True)
    out = NodeFirst.apply(sums, scale)
    assert out.is_contiguous()
    torch.testing.assert_close(out, (sums * scale.unsqueeze(-1)).permute(1, 0, 2))
    grad_sums = torch.autograd.grad(out.square().sum(), sums)[0]
    assert grad_sums.is_contiguous()  # what each index_add_ backward and sparse product reads whole
    assert torch.autograd.gradcheck(NodeFirst.apply, (sums, scale))


def adjacency(num_rows=6, num_columns=8, num_edges=30, dtype=torch.float64, seed=0) -> SparseAdjacency:
    """A random non-square CSR with duplicate entries, rows and columns without any, as ``_adjacency``
    lays it out (32-bit indices)."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, num_rows - 1, (num_edges,), generator=generator)
    columns = torch.randint(0, num_columns - 1, (num_edges,), generator=generator)
    order, crow = _compressed(rows, num_rows)
    matrix = _csr(crow.int(), columns[order].int(), torch.rand(num_edges, generator=generator, dtype=dtype),
                  (num_rows, num_columns))
    return SparseAdjacency(matrix, torch.arange(num_rows), [0, num_rows], [[0]])


@pytest.mark.parametrize("num_edges", [0, 1, 30])
def test_adjacency_transposed_is_the_transpose(num_edges):
    sparse = adjacency(num_edges=num_edges)
    transposed = sparse.transposed
    assert transposed.layout == torch.sparse_csr and transposed.shape == (8, 6)
    assert transposed.col_indices().dtype == torch.int32  # what the CPU kernels take without a copy
    torch.testing.assert_close(transposed.to_dense(), sparse.matrix.to_dense().t())


def test_adjacency_product_gradients():
    """The product and its gradient in the dense side, once and twice differentiated, against dense
    matrices (float64)."""
    sparse = adjacency()
    x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    out = sparse.product(x)
    torch.testing.assert_close(out, sparse.matrix.to_dense() @ x)
    grad = torch.randn(6, 3, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(out, x, grad)[0], sparse.matrix.to_dense().t() @ grad)
    assert torch.autograd.gradcheck(sparse.product, (x,))
    assert torch.autograd.gradgradcheck(sparse.product, (x,))


def test_adjacency_transposed_is_made_for_a_backward_once():
    """Inference never makes it; every backward through the adjacency (a model's layers) shares one."""
    sparse = adjacency()
    x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        sparse.product(x)
    assert "transposed" not in vars(sparse)
    sparse.product(x).sum().backward()
    made = sparse.transposed
    sparse.product(x).sum().backward()
    assert sparse.transposed is made


def test_adjacency_product_in_bfloat16():
    """bf16 features are multiplied in float32 (CPU sparse kernels have none) and their gradient
    comes back in bf16."""
    sparse = adjacency(dtype=torch.float32)
    x = torch.randn(8, 3).bfloat16().requires_grad_()
    out = sparse.product(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), sparse.matrix.to_dense() @ x.float(), atol=0.02, rtol=0.02)
    out.float().sum().backward()
    assert x.grad.dtype == torch.bfloat16
    torch.testing.assert_close(x.grad.float(), sparse.matrix.to_dense().t() @ torch.ones(6, 3), atol=0.02, rtol=0.02)
