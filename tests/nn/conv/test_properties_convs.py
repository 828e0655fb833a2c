"""Properties of every registered fusion conv over random graphs (hypothesis): random builders and
samples (missing and one-node modalities, every cross-modal strategy, virtual nodes), dense or sparse
flat graphs, random widths, heads, options, kernel rules, dtypes and input magnitudes. Each conv gives finite
outputs and gradients of the right shape and dtype, equal on its fused and reference paths."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from properties import builders, samples
from test_conformance import OPTIONS

from graphfuse.data import FeatureModality, GraphBuilder, VirtualNodes
from graphfuse.nn import FlatGraph
from graphfuse.nn.conv import KernelRules
from graphfuse.nn.fusion import create_conv, list_convs

pytestmark = pytest.mark.usefixtures("one_thread")
# Input magnitudes from tiny to large: a layer's products of such inputs stay inside the dtype's range.
SCALES = {torch.float32: (0.0, 1e-30, 1e-3, 1.0, 1e3, 1e6, 1e12), torch.float64: (0.0, 1e-300, 1.0, 1e6, 1e30, 1e60)}
# The fused path's kernels: the defaults, GAT's sorted block kernel for every block, no dense blocks.
RULES = (KernelRules(), KernelRules(sorted_min_block=1), KernelRules(dense_blocks=False))
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-9}  # relative to the output's scale


@st.composite
def flat_graphs(draw):
    """A collated batch of random samples of a random builder, as a dense or a sparse flat graph."""
    builder = draw(builders(capped=False))
    batch = builder.collate(draw(st.lists(samples(builder, empty=False), min_size=1, max_size=4)))
    return FlatGraph.from_batch(batch, builder.metadata(), dense=draw(st.booleans())), builder.metadata()


@pytest.mark.parametrize("name", list_convs())
@given(graph_and_metadata=flat_graphs(), heads=st.sampled_from([1, 2]), per_head=st.integers(1, 4),
       dtype=st.sampled_from(list(SCALES)), data=st.data())
def test_conv_outputs_are_finite_and_equal_on_both_paths(name, graph_and_metadata, heads, per_head, dtype, data):
    graph, metadata = graph_and_metadata
    channels = heads * per_head
    options = data.draw(st.sampled_from(OPTIONS.get(name, [{}])), "options")
    rules = data.draw(st.sampled_from(RULES), "rules")
    scale = data.draw(st.sampled_from(SCALES[dtype]), "scale")
    generator = torch.Generator().manual_seed(data.draw(st.integers(0, 2 ** 16), "seed"))
    x = (torch.randn(graph.num_nodes, channels, generator=generator, dtype=torch.float64) * scale).to(dtype)
    outputs = []
    for path in ("fused", "reference"):
        torch.manual_seed(0)
        conv = create_conv(name, channels, metadata, heads=heads, dtype=dtype, path=path, rules=rules, **options)
        inputs = x.clone().requires_grad_()
        out = conv(inputs, graph)
        assert out.size(0) == graph.num_nodes and out.dtype == dtype
        assert torch.isfinite(out).all(), f"{path} path: {int((~torch.isfinite(out)).sum())} NaN/Inf outputs"
        if out.requires_grad:  # not where no relation and no root weight reads the input
            (gradient,) = torch.autograd.grad(out.sum(), inputs)
            assert torch.isfinite(gradient).all(), f"{path} path: NaN/Inf gradients"
        outputs.append(out.detach())
    fused, reference = outputs
    bound = TOLERANCE[dtype] * max(1.0, float(reference.abs().max()))
    torch.testing.assert_close(fused, reference, rtol=0, atol=bound)


@pytest.mark.parametrize(("dtype", "scale"), [(torch.float32, 1e12), (torch.float64, 1e30), (torch.float64, 1e200)])
def test_gat_blocks_keep_their_weights_at_large_logits(dtype, scale):
    """Found by the property above: the dense GAT block kernel took its softmax shift in natural units
    and its scores in base 2, so the two disagreed by rounding; once one ulp of the logits passes
    ~2^10 (float32 logits of 1e10, float64 of 1e19) the weights became 0 (outputs 0) or inf (NaN)."""
    builder = GraphBuilder({"feat": FeatureModality(3)}, [VirtualNodes(1)])
    graph = FlatGraph.from_batch(builder.collate([{"feat": torch.ones(1, 3)}]), builder.metadata())
    assert any(graph.dense)
    x = (torch.tensor([[1.0], [-0.5]], dtype=torch.float64) * scale).to(dtype)
    outputs = []
    for path in ("fused", "reference"):
        torch.manual_seed(0)
        outputs.append(create_conv("gat", 1, builder.metadata(), heads=1, dtype=dtype, path=path)(x, graph))
    torch.testing.assert_close(*outputs, rtol=TOLERANCE[dtype], atol=0)
