"""One conformance suite for every registered fusion conv, on both paths (fused kernels and the
reference gather / scatter): dense blocks equal sparse edges, the paths equal each other,
gradients check (second derivatives too, or a clear error where the fused kernels are differentiable
once), node permutations commute, samples stay apart, missing node types and single-node samples
work, bf16 autocast stays close."""
import pytest
import torch

from graphfuse.deprecation import GraphfuseDeprecationWarning
from graphfuse.nn import FlatGraph, RelationalConv
from graphfuse.nn.conv import KernelRules
from graphfuse.nn.fusion import create_conv, list_convs
from graphfuse.testing import tri_modal_builder

PATHS = ["fused", "reference"]
# Options each conv is checked with (a conv registered later is checked with its defaults).
OPTIONS = {
    "gcn": [{}, {"aggr": "mean"}, {"normalize": "mean", "aggr": "mean"}, {"normalize": "sum", "root_weight": False},
            {"add_self_loops": True, "bias": False}],
    "gat": [{}, {"softmax": "relation"}, {"softmax": "relation", "aggr": "mean"},
            {"root_weight": True, "concat": False},
            {"add_self_loops": False, "softmax": "relation", "aggr": "mean", "root_weight": True}],
    "hgt": [{}, {"softmax": "relation"}],
    "gated": [{}, {"normalize": "sym"}, {"normalize": "sum", "root_weight": False, "bias": False}],
}
CASES = [(name, options) for name in list_convs() for options in OPTIONS.get(name, [{}])]
ATTENTION = [case for case in CASES if case[0] in ("gat", "hgt")]
GRADCHECK = [("gcn", {}, True), ("gcn", {}, False), ("gcn", {"aggr": "mean", "add_self_loops": True}, True),
             ("gcn", {"aggr": "mean", "add_self_loops": True}, False),
             ("gat", {"softmax": "relation", "root_weight": True}, True), ("gat", {"root_weight": True}, False),
             ("hgt", {"softmax": "relation"}, True), ("hgt", {}, False),
             ("gated", {"normalize": "sym"}, True), ("gated", {}, False)]
PERMUTATIONS = {
    "gcn": [({"aggr": "mean", "add_self_loops": True}, "image", 3), ({}, "text", 0)],
    "gat": [({}, "image", 3), ({"softmax": "relation", "aggr": "mean"}, "text", 0)],
    "hgt": [({}, "image", 3), ({"softmax": "relation"}, "audio", 0)],
    "gated": [({}, "image", 3), ({"normalize": "sym"}, "text", 1)],
}
# The options of the checks that take one configuration per conv.
SINGLE_NODE = {"gcn": {"add_self_loops": True, "aggr": "mean"}}
BATCHED = {"gcn": {}, "gat": {"softmax": "relation"}, "hgt": {"softmax": "relation"}, "gated": {"normalize": "sym"}}
MISSING_TYPE = {"gcn": {"aggr": "mean"}}
# Convs whose fused path autograd differentiates twice; the attention kernels' backwards write in place.
FUSED_TWICE_DIFFERENTIABLE = {"gcn", "gated"}
ids = str


def make(name, metadata, channels=8, dtype=torch.float64, path="fused", **options):
    """The registered conv ``name`` (``channels`` in and out, 2 heads), with every parameter that
    starts constant (biases, priors, skip gates) drawn at random so that it is checked too."""
    torch.manual_seed(0)
    conv = create_conv(name, channels, metadata, heads=2, dtype=dtype, path=path, **options)
    with torch.no_grad():
        for parameter in conv.parameters():
            if parameter.numel() > 1 and bool((parameter == parameter.flatten()[0]).all()):
                parameter.uniform_(-1, 1)
    return conv


def test_every_registered_conv_is_checked():
    assert {name for name, _ in CASES} == set(list_convs()) >= {"gcn", "gat", "hgt", "gated"}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("name", "options"), CASES, ids=ids)
def test_dense_matches_sparse(name, options, path, metadata, flat_graph, sparse_graph, features):
    assert any(flat_graph.dense)
    conv = make(name, metadata, path=path, **options)
    x = features(flat_graph, 8)
    torch.testing.assert_close(conv(x, flat_graph), conv(x, sparse_graph))


@pytest.fixture(scope="module")
def long_sparse_batch():
    """Text <-> image complete bipartite, beside audio far longer than both with strided cross edges."""
    from graphfuse.data import CrossEdges, GraphBuilder, StridedBipartite
    from graphfuse.datasets import synthetic_samples

    builder = tri_modal_builder()
    builder = GraphBuilder(builder.modalities, cross=[CrossEdges("text", "image", "full"),
                                                      CrossEdges("text", "audio", StridedBipartite(2)),
                                                      CrossEdges("image", "audio", StridedBipartite(2))])
    samples = synthetic_samples(3, tokens=3, grid=2, frames=300)
    samples[1]["audio"] = (samples[1]["audio"][0][:1600], samples[1]["audio"][1])  # a shorter recording
    return builder.collate([builder.featurize(s) for s in samples]), builder.metadata()


@pytest.mark.parametrize(("name", "options"), CASES, ids=ids)
def test_dense_blocks_are_as_long_as_their_own_node_types(name, options, long_sparse_batch, features):
    """Blocks pad to the longest text or image of a sample (4), not to the 300 audio frames beside them."""
    batch, metadata = long_sparse_batch
    graph, sparse = (FlatGraph.from_batch(batch, metadata, dense=dense) for dense in (True, False))
    blocks = graph.dense_blocks()
    assert blocks.src_node.shape[-1] == blocks.dst_node.shape[-1] == 4 < graph.block_size == 300
    conv = make(name, metadata, **options)
    x = features(graph, 8)
    torch.testing.assert_close(conv(x, graph), conv(x, sparse))


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize(("name", "options"), CASES, ids=ids)
def test_reference_matches_fused(name, options, dense, metadata, batch, features):
    """Outputs and gradients (of the input and every parameter) of the two paths agree."""
    graph = FlatGraph.from_batch(batch, metadata, dense=dense)
    x = features(graph, 8).requires_grad_()
    results = []
    for path in PATHS:
        conv = make(name, metadata, path=path, **options)
        out = conv(x, graph)
        results.append((out, torch.autograd.grad(out.square().sum(), [x, *conv.parameters()])))
    (fused, fused_grads), (reference, reference_grads) = results
    torch.testing.assert_close(reference, fused)
    for reference_grad, fused_grad in zip(reference_grads, fused_grads, strict=True):
        torch.testing.assert_close(reference_grad, fused_grad)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("name", "options"), ATTENTION, ids=ids)
def test_attention_weights(name, options, path, metadata, flat_graph, sparse_graph, features):
    """The weights of each relation come in its input edge order, equal on dense and sparse graphs
    and on both paths, and those of each destination sum to one (over all incoming relations, or
    within each relation)."""
    conv = make(name, metadata, path=path, **options)
    x = features(flat_graph, 8)
    out, weights = conv(x, flat_graph, return_attention_weights=True)
    out_sparse, weights_sparse = conv(x, sparse_graph, return_attention_weights=True)
    _, weights_other = make(name, metadata, path=PATHS[path == "fused"], **options)(
        x, flat_graph, return_attention_weights=True)
    torch.testing.assert_close(out, out_sparse)
    assert list(weights) == list(metadata[1]) == list(weights_other)
    for edge_type, (index, alpha) in weights.items():
        for index_other, alpha_other in (weights_sparse[edge_type], weights_other[edge_type]):
            assert torch.equal(index, index_other)
            torch.testing.assert_close(alpha, alpha_other)
        assert alpha.shape == (index.size(1), 2) and bool((alpha >= 0).all())
    per_relation = options.get("softmax") == "relation"
    for t, node_type in enumerate(metadata[0]):
        totals = []
        for edge_type, (index, alpha) in weights.items():
            if edge_type[2] == node_type:
                total = alpha.new_zeros(flat_graph.num_nodes_per_type[t], 2).index_add(0, index[1], alpha)
                totals.append(total)
                if per_relation:
                    received = torch.bincount(index[1], minlength=total.size(0)) > 0
                    torch.testing.assert_close(total[received], torch.ones_like(total[received]))
        if not per_relation:
            total = sum(totals)
            received = total.sum(-1) > 0  # every node, where self loops are added
            torch.testing.assert_close(total[received], torch.ones_like(total[received]))
            if options.get("add_self_loops", name == "gat"):
                assert bool(received.all())


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("name", "options", "dense"), GRADCHECK, ids=ids)
def test_gradcheck(name, options, dense, path, tiny_batch, metadata, features, gradcheck):
    graph = FlatGraph.from_batch(tiny_batch, metadata, dense=dense)
    assert any(graph.dense) == dense
    gradcheck(make(name, metadata, 4, path=path, **options), features(graph, 4), graph)


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize(("name", "options"), CASES, ids=ids)
def test_second_derivatives(name, options, dense, metadata, tiny_batch, features):
    """A gradient penalty (create_graph=True): the fused path gives the reference path's second
    derivatives, or, where its kernels are differentiable once, an error naming the reference path."""
    graph = FlatGraph.from_batch(tiny_batch, metadata, dense=dense)

    def second_derivatives(path):
        conv = make(name, metadata, 4, path=path, **options)
        x = features(graph, 4).requires_grad_()
        first = torch.autograd.grad(conv(x, graph).square().sum(), x, create_graph=True)[0]
        return torch.autograd.grad(first.square().sum(), [x, *conv.parameters()], allow_unused=True)

    reference = second_derivatives("reference")
    assert reference[0] is not None and bool(reference[0].ne(0).any())
    if name not in FUSED_TWICE_DIFFERENTIABLE:
        with pytest.raises(RuntimeError, match=r"differentiable once.*path='reference'"):
            second_derivatives("fused")
        return
    for fused_grad, reference_grad in zip(second_derivatives("fused"), reference, strict=True):
        assert (fused_grad is None) == (reference_grad is None)
        if reference_grad is not None:
            torch.testing.assert_close(fused_grad, reference_grad)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", list_convs())
def test_permutation_equivariance(name, path, metadata, assert_permutation_equivariant):
    for options, node_type, sample in PERMUTATIONS.get(name, [({}, "image", 3)]):
        assert_permutation_equivariant(make(name, metadata, path=path, **options), 8, node_type=node_type,
                                       sample=sample)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("name", "options"), [case for case in CASES if case[1] in OPTIONS.get(case[0], [{}])[:2]],
                         ids=ids)
def test_no_cross_sample_leakage(name, options, path, metadata, flat_graph, sparse_graph, assert_no_leakage):
    conv = make(name, metadata, dtype=None, path=path, **options)
    for graph in (flat_graph, sparse_graph):
        assert_no_leakage(conv, graph, 8)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", list_convs())
def test_single_node_sample(name, path, metadata, single_node_batch, assert_batched_equals_single):
    conv = make(name, metadata, path=path, **SINGLE_NODE.get(name, {}))
    assert_batched_equals_single(conv, single_node_batch, metadata, 8)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", list_convs())
def test_batched_equals_single(name, path, metadata, batch, assert_batched_equals_single):
    assert_batched_equals_single(make(name, metadata, path=path, **BATCHED.get(name, {})), batch, metadata, 8)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", list_convs())
def test_node_type_missing_from_batch(name, path, metadata, no_audio_batch, assert_missing_type_ok):
    conv = make(name, metadata, path=path, **MISSING_TYPE.get(name, {}))
    assert_missing_type_ok(conv, no_audio_batch, metadata, 8, 8)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", list_convs())
def test_bf16_autocast(name, path, metadata, flat_graph, assert_bf16_close):
    conv = make(name, metadata, 16, dtype=None, path=path, **MISSING_TYPE.get(name, {}))
    assert_bf16_close(conv, flat_graph, 16)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", [name for name in list_convs() if name in ("gat", "hgt")])
def test_dropout_only_in_training(name, path, metadata, flat_graph, features):
    conv = make(name, metadata, path=path, dropout=0.5)
    x = features(flat_graph, 8)
    conv.eval()
    torch.testing.assert_close(conv(x, flat_graph), conv(x, flat_graph))
    conv.train()
    assert not torch.allclose(conv(x, flat_graph), conv(x, flat_graph))


@pytest.mark.parametrize("name", list_convs())
def test_wrong_in_channels(name, metadata, flat_graph, features):
    conv = make(name, metadata)
    with pytest.raises(ValueError, match=rf"'{conv.__class__.__name__}' was built for 8 input channels .* with 5"):
        conv(features(flat_graph, 5), flat_graph)


@pytest.mark.parametrize("name", list_convs())
def test_path_and_rules(name, metadata, flat_graph, features):
    """``path="auto"`` takes the fused kernels in eager mode; rules without dense blocks give the
    same outputs; a wrong path or rules object is named in the error."""
    conv = make(name, metadata, path="auto")
    assert conv.runs_fused()
    x = features(flat_graph, 8)
    without_blocks = make(name, metadata, rules=KernelRules(dense_blocks=False))
    torch.testing.assert_close(without_blocks(x, flat_graph), conv(x, flat_graph))
    with pytest.raises(ValueError, match="'path'"):
        make(name, metadata, path="fast")
    with pytest.raises(TypeError, match="KernelRules"):
        make(name, metadata, rules={"dense_blocks": False})
    with pytest.raises(ValueError, match="sorted_min_block"):
        KernelRules(sorted_min_block=0)


def test_conv_written_for_propagate_flat_still_runs(metadata, flat_graph, features):
    """A conv from before the two paths (one ``propagate_flat``) runs it on both, with a warning."""
    with pytest.warns(GraphfuseDeprecationWarning, match="propagate_flat is deprecated"):
        class Identity(RelationalConv):
            def propagate_flat(self, x, graph, return_weights):
                return x, None

    x = features(flat_graph, 8)
    for path in PATHS:
        assert torch.equal(Identity(8, 8, metadata, path=path)(x, flat_graph), x)
