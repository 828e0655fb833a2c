"""The fused convs' per-type projections against per-type products: the GAT values' head-first
projection and the GCN's type projection (values, float64 gradcheck, node types without nodes or
without relations, bf16 autocast; the type projection also twice differentiated)."""
import pytest
import torch

from graphfuse.nn.conv.fused.convs import HeadFirstProjection, TypeProjection

H, F, C = 2, 5, 3


def inputs(sizes, relations, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(sizes), F, generator=generator, dtype=dtype)
    weights = [torch.randn(H, F, r, C, generator=generator, dtype=dtype) for r in relations]
    return x, weights


def expected(x, sizes, weights):
    """Per type ``[H, n_t * R_t, C]`` of ``x_t @ w_t[h]`` (node-major, relation within a node), concatenated."""
    parts = [torch.einsum("nf,hfrc->hnrc", node, w).reshape(H, -1, C)
             for node, w in zip(torch.split(x, sizes), weights, strict=True)]
    return torch.cat(parts, 1)


CASES = {"three types": ([4, 2, 3], [2, 3, 1]), "no outgoing relations": ([4, 2, 3], [2, 0, 1]),
         "no nodes": ([4, 0, 3], [2, 3, 1]), "one type": ([5], [2])}


@pytest.mark.parametrize("sizes, relations", CASES.values(), ids=CASES.keys())
def test_head_first_projection_equals_per_type_einsums(sizes, relations):
    x, weights = inputs(sizes, relations)
    out = HeadFirstProjection.apply(x, sizes, *weights)
    assert out.is_contiguous()
    torch.testing.assert_close(out, expected(x, sizes, weights))


@pytest.mark.parametrize("sizes, relations", CASES.values(), ids=CASES.keys())
def test_head_first_projection_gradcheck(sizes, relations):
    x, weights = inputs(sizes, relations)
    assert torch.autograd.gradcheck(lambda x, *weights: HeadFirstProjection.apply(x, sizes, *weights),
                                    (x.requires_grad_(), *(w.requires_grad_() for w in weights)))


@pytest.mark.parametrize("sizes, relations", CASES.values(), ids=CASES.keys())
def test_head_first_projection_with_side_products(sizes, relations):
    """One more weight per type (GAT's folded logits): also each type's plain product, and
    gradients as if each were a matmul of its own."""
    x, weights = inputs(sizes, relations)
    generator = torch.Generator().manual_seed(1)
    sides = [torch.randn(F, width, generator=generator, dtype=torch.float64) for width in (3, 0, 2, 1)[:len(sizes)]]
    out, *products = HeadFirstProjection.apply(x, sizes, *weights, *sides)
    torch.testing.assert_close(out, expected(x, sizes, weights))
    for product, node, side in zip(products, torch.split(x, sizes), sides, strict=True):
        torch.testing.assert_close(product, node @ side)
    assert torch.autograd.gradcheck(lambda x, *weights: HeadFirstProjection.apply(x, sizes, *weights),
                                    (x.requires_grad_(), *(w.requires_grad_() for w in (*weights, *sides))))


def test_head_first_projection_of_strided_weights():
    """Weights as gat_conv passes them: a permuted view of the stacked relation weights."""
    sizes, relations = [4, 3], [2, 1]
    x, _ = inputs(sizes, relations)
    stacked = torch.randn(3, F, H, C, dtype=torch.float64, requires_grad=True)

    def weights():
        return [stacked[[0, 1]].permute(2, 1, 0, 3), stacked[[2]].permute(2, 1, 0, 3)]

    out = HeadFirstProjection.apply(x, sizes, *weights())
    reference = expected(x, sizes, weights())
    torch.testing.assert_close(out, reference)
    grad = torch.autograd.grad(out.square().sum(), stacked)[0]
    torch.testing.assert_close(grad, torch.autograd.grad(reference.square().sum(), stacked)[0])


def test_head_first_projection_under_bf16_autocast():
    """As a plain matmul under autocast: bf16 products, the gradients back in the inputs' dtypes."""
    sizes, relations = [4, 2, 3], [2, 3, 1]
    x, weights = inputs(sizes, relations, torch.float32)
    x.requires_grad_()
    weights = [w.requires_grad_() for w in weights]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = HeadFirstProjection.apply(x, sizes, *weights)
        reference = expected(x, sizes, weights)
    assert out.dtype == reference.dtype == torch.bfloat16
    torch.testing.assert_close(out, reference, atol=0.05, rtol=0.02)
    grads = torch.autograd.grad(out.float().square().sum(), [x, *weights])
    grads_expected = torch.autograd.grad(reference.float().square().sum(), [x, *weights])
    for grad, grad_expected in zip(grads, grads_expected, strict=True):
        assert grad.dtype == torch.float32
        assert (grad - grad_expected).norm() / grad_expected.norm() < 0.02


OUT = 4


def type_inputs(counts, relations, dtype=torch.float64, seed=0):
    """A GCN's two inputs: neighbour sums with ``relations[t]`` rows a node of type ``t`` (``C`` wide)
    and node features (``F`` wide), with a weight per type for each: ``[R_t * C, OUT]`` and ``[F, OUT]``."""
    generator = torch.Generator().manual_seed(seed)
    sums = torch.randn(sum(n * r for n, r in zip(counts, relations, strict=True)), C, generator=generator, dtype=dtype)
    x = torch.randn(sum(counts), F, generator=generator, dtype=dtype)
    weights = [torch.randn(r * C, OUT, generator=generator, dtype=dtype) for r in relations]
    roots = [torch.randn(F, OUT, generator=generator, dtype=dtype) for _ in counts]
    return sums, x, weights, roots


def type_expected(counts, relations, sums, x, weights, roots):
    rows = [n * r for n, r in zip(counts, relations, strict=True)]
    return torch.cat([grouped.reshape(n, w.size(0)) @ w + node @ root for grouped, node, n, w, root in zip(
        torch.split(sums, rows), torch.split(x, counts), counts, weights, roots, strict=True)])


TYPE_CASES = {"three types": ([4, 2, 3], [2, 3, 1]), "no relations": ([4, 2, 3], [2, 0, 1]),
              "no nodes": ([4, 0, 3], [2, 3, 1]), "one type": ([5], [2])}


@pytest.mark.parametrize("counts, relations", TYPE_CASES.values(), ids=TYPE_CASES.keys())
def test_type_projection_equals_per_type_products(counts, relations):
    sums, x, weights, roots = type_inputs(counts, relations)
    out = TypeProjection.apply(counts, sums, x, *weights, *roots)
    torch.testing.assert_close(out, type_expected(counts, relations, sums, x, weights, roots))
    roots_only = torch.cat([node @ root for node, root in zip(torch.split(x, counts), roots, strict=True)])
    torch.testing.assert_close(TypeProjection.apply(counts, x, *roots), roots_only)


@pytest.mark.parametrize("counts, relations", TYPE_CASES.values(), ids=TYPE_CASES.keys())
def test_type_projection_gradients(counts, relations):
    """Once (the rows written in place) and twice differentiated (create_graph: plain matmuls)."""
    tensors = [t.requires_grad_() for t in (lambda s, x, w, r: [s, x, *w, *r])(*type_inputs(counts, relations))]
    assert torch.autograd.gradcheck(lambda *tensors: TypeProjection.apply(counts, *tensors), tensors)
    assert torch.autograd.gradgradcheck(lambda *tensors: TypeProjection.apply(counts, *tensors), tensors)


def test_type_projection_gradients_of_what_needs_them():
    """Inputs without grad get none (frozen features, a frozen weight) and the rest are right."""
    counts, relations = [3, 2], [2, 1]
    sums, x, weights, roots = type_inputs(counts, relations)
    sums.requires_grad_()
    weights[1].requires_grad_()
    out = TypeProjection.apply(counts, sums, x, *weights, *roots)
    grads = torch.autograd.grad(out.square().sum(), [sums, weights[1]])
    reference = type_expected(counts, relations, sums, x, weights, roots)
    expected = torch.autograd.grad(reference.square().sum(), [sums, weights[1]])
    for grad, grad_expected in zip(grads, expected, strict=True):
        torch.testing.assert_close(grad, grad_expected)


def test_type_projection_under_bf16_autocast():
    """As plain matmuls under autocast: a bf16 output, the gradients back in the inputs' dtypes."""
    counts, relations = [4, 2, 3], [2, 3, 1]
    tensors = [t.requires_grad_() for t in (lambda s, x, w, r: [s, x, *w, *r])(
        *type_inputs(counts, relations, torch.float32))]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = TypeProjection.apply(counts, *tensors)
        reference = type_expected(counts, relations, tensors[0], tensors[1], tensors[2:5], tensors[5:])
    assert out.dtype == reference.dtype == torch.bfloat16
    torch.testing.assert_close(out, reference, atol=0.1, rtol=0.02)
    grads = torch.autograd.grad(out.float().square().sum(), tensors)
    grads_expected = torch.autograd.grad(reference.float().square().sum(), tensors)
    for grad, grad_expected in zip(grads, grads_expected, strict=True):
        assert grad.dtype == torch.float32
        assert (grad - grad_expected).norm() / grad_expected.norm() < 0.02


def test_head_first_projection_refuses_second_derivatives_clearly():
    sizes, relations = [4, 2], [2, 1]
    x, weights = inputs(sizes, relations)
    out = HeadFirstProjection.apply(x.requires_grad_(), sizes, *weights)
    with pytest.raises(RuntimeError, match="HeadFirstProjection kernel is differentiable once.*path='reference'"):
        torch.autograd.grad(out.square().sum(), x, create_graph=True)
