"""The GAT values' head-first projection against per-type einsums: values, gradients (float64
gradcheck), node types without nodes or without outgoing relations, bf16 autocast."""
import pytest
import torch

from graphfuse.nn.conv.fused.convs import HeadFirstProjection

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
