import pytest
import torch

from graphfuse.nn import FlatGraph, GatedRelationalConv

OPTIONS = [{}, {"normalize": "sym"}, {"normalize": "sum", "root_weight": False, "bias": False}]


def make(metadata, in_channels=8, out_channels=6, dtype=torch.float64, **kwargs):
    torch.manual_seed(0)
    conv = GatedRelationalConv(in_channels, out_channels, metadata, dtype=dtype, **kwargs)
    with torch.no_grad():
        conv.gate_bias.uniform_(-1, 1)
        if conv.bias is not None:
            conv.bias.uniform_(-1, 1)
    return conv


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_dense_matches_sparse(options, metadata, flat_graph, sparse_graph, features):
    conv = make(metadata, **options)
    x = features(flat_graph, 8)
    torch.testing.assert_close(conv(x, flat_graph), conv(x, sparse_graph))


def test_relation_without_edges_contributes_nothing(metadata, features):
    """A node whose only relation brings no edges gets its root term and bias alone."""
    graph = FlatGraph.from_dicts(metadata, {"text": 3}, {}, {"text": torch.tensor([0, 0, 1])})
    conv = make(metadata)
    x = features(graph, 8)
    torch.testing.assert_close(conv(x, graph), x @ conv.root[0] + conv.bias)


@pytest.mark.parametrize("dense", [True, False])
def test_gradcheck(dense, tiny_batch, metadata, features, gradcheck):
    graph = FlatGraph.from_batch(tiny_batch, metadata, dense=dense)
    gradcheck(make(metadata, 3, 2, normalize="sym" if dense else "mean"), features(graph, 3), graph)


def test_permutation_equivariance(metadata, assert_permutation_equivariant):
    assert_permutation_equivariant(make(metadata), 8)
    assert_permutation_equivariant(make(metadata, normalize="sym"), 8, node_type="text", sample=1)


def test_no_cross_sample_leakage(metadata, flat_graph, sparse_graph, assert_no_leakage):
    conv = make(metadata, dtype=None)
    for graph in (flat_graph, sparse_graph):
        assert_no_leakage(conv, graph, 8)


def test_single_node_sample(metadata, single_node_batch, assert_batched_equals_single):
    assert_batched_equals_single(make(metadata), single_node_batch, metadata, 8)


def test_batched_equals_single(metadata, batch, assert_batched_equals_single):
    assert_batched_equals_single(make(metadata, normalize="sym"), batch, metadata, 8)


def test_node_type_missing_from_batch(metadata, no_audio_batch, assert_missing_type_ok):
    assert_missing_type_ok(make(metadata), no_audio_batch, metadata, 8, 6)


def test_bf16_autocast(metadata, flat_graph, assert_bf16_close):
    assert_bf16_close(make(metadata, 16, 16, dtype=None), flat_graph, 16)


def test_wrong_in_channels(metadata, flat_graph, features):
    with pytest.raises(ValueError, match=r"'GatedRelationalConv' was built for 8 input channels .* with 5"):
        make(metadata)(features(flat_graph, 5), flat_graph)


def test_repr(metadata):
    assert repr(GatedRelationalConv(16, 8, metadata)) == "GatedRelationalConv(16, 8, num_relations=9)"
