import pytest
import torch
from torch_geometric.nn import GCNConv
from torch_geometric.utils import remove_self_loops, to_undirected

from graphfuse.nn import FlatGraph, RelationalGCNConv

OPTIONS = [
    {},
    {"aggr": "mean"},
    {"normalize": "mean", "aggr": "mean"},
    {"normalize": "sum", "root_weight": False},
    {"add_self_loops": True, "bias": False},
]


def make(metadata, in_channels=8, out_channels=6, dtype=torch.float64, **kwargs):
    torch.manual_seed(0)
    conv = RelationalGCNConv(in_channels, out_channels, metadata, dtype=dtype, **kwargs)
    if conv.bias is not None:  # a non-zero bias, so that it is checked too
        torch.nn.init.uniform_(conv.bias, -1, 1)
    return conv


def test_matches_pyg_gcn_conv():
    torch.manual_seed(0)
    edge_index = to_undirected(remove_self_loops(torch.randint(0, 12, (2, 40)))[0])
    x = torch.randn(12, 8)
    reference = GCNConv(8, 5)
    conv = RelationalGCNConv(8, 5, (["n"], [("n", "e", "n")]), add_self_loops=True, root_weight=False)
    with torch.no_grad():
        conv.weight[0] = reference.lin.weight.T
        conv.bias.copy_(torch.randn(5))
        reference.bias.copy_(conv.bias)
    out = conv({"n": x}, {("n", "e", "n"): edge_index})
    torch.testing.assert_close(out["n"], reference(x, edge_index))


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_dense_matches_sparse(options, metadata, flat_graph, sparse_graph, features):
    assert any(flat_graph.dense)
    conv = make(metadata, **options)
    x = features(flat_graph, 8)
    torch.testing.assert_close(conv(x, flat_graph), conv(x, sparse_graph))


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("options", [{}, {"aggr": "mean", "add_self_loops": True}], ids=str)
def test_gradcheck(options, dense, tiny_batch, metadata, features, gradcheck):
    graph = FlatGraph.from_batch(tiny_batch, metadata, dense=dense)
    assert any(graph.dense) == dense
    conv = make(metadata, 3, 2, **options)
    gradcheck(conv, features(graph, 3), graph)


def test_permutation_equivariance(metadata, assert_permutation_equivariant):
    assert_permutation_equivariant(make(metadata, aggr="mean", add_self_loops=True), 8)
    assert_permutation_equivariant(make(metadata), 8, node_type="text", sample=0)


@pytest.mark.parametrize("options", OPTIONS[:2], ids=str)
def test_no_cross_sample_leakage(options, metadata, flat_graph, sparse_graph, assert_no_leakage):
    conv = make(metadata, dtype=None, **options)
    for graph in (flat_graph, sparse_graph):
        assert_no_leakage(conv, graph, 8)


def test_single_node_sample(metadata, single_node_batch, assert_batched_equals_single):
    assert_batched_equals_single(make(metadata, add_self_loops=True, aggr="mean"), single_node_batch, metadata, 8)


def test_batched_equals_single(metadata, batch, assert_batched_equals_single):
    assert_batched_equals_single(make(metadata), batch, metadata, 8)


def test_node_type_missing_from_batch(metadata, no_audio_batch, assert_missing_type_ok):
    assert_missing_type_ok(make(metadata, aggr="mean"), no_audio_batch, metadata, 8, 6)


def test_bf16_autocast(metadata, flat_graph, assert_bf16_close):
    assert_bf16_close(make(metadata, 16, 16, dtype=None, aggr="mean"), flat_graph, 16)


@pytest.mark.slow  # about 20 s of compilation on CPU
def test_torch_compile_matches_eager(metadata, flat_graph, features):
    conv = make(metadata, 8, 8, dtype=None)
    x = features(flat_graph, 8, torch.float32)
    compiled = torch.compile(conv)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, flat_graph), conv(x, flat_graph), rtol=1e-4, atol=1e-5)


def test_wrong_in_channels(metadata, flat_graph, features):
    conv = make(metadata, 8, 6)
    with pytest.raises(ValueError, match=r"'RelationalGCNConv' was built for 8 input channels .* with 5"):
        conv(features(flat_graph, 5), flat_graph)


def test_wrong_arguments(metadata, flat_graph, features):
    with pytest.raises(ValueError, match="aggr"):
        RelationalGCNConv(8, 6, metadata, aggr="max")
    with pytest.raises(ValueError, match="'RelationalGCNConv' needs a positive integer 'in_channels'"):
        RelationalGCNConv(0, 6, metadata)
    with pytest.raises(TypeError, match="FlatGraph"):
        make(metadata)(features(flat_graph, 8), {})
    other = RelationalGCNConv(8, 6, (["text"], [("text", "seq", "text")]))
    with pytest.raises(ValueError, match="metadata"):
        other(features(flat_graph, 8, torch.float32), flat_graph)


def test_repr(metadata):
    assert repr(RelationalGCNConv(16, 8, metadata)) == "RelationalGCNConv(16, 8, num_relations=9, aggr='sum')"
    assert repr(RelationalGCNConv(4, 2, metadata, aggr="mean")) == (
        "RelationalGCNConv(4, 2, num_relations=9, aggr='mean')")
