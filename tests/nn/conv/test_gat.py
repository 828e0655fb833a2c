import pytest
import torch
from torch_geometric.nn import GATConv

from graphfuse.nn import FlatGraph, RelationalGATConv
from graphfuse.nn.conv import bipartite

OPTIONS = [
    {},
    {"softmax": "relation"},
    {"softmax": "relation", "aggr": "mean"},
    {"root_weight": True, "concat": False},
    {"add_self_loops": False, "softmax": "relation", "aggr": "mean", "root_weight": True},
]


def make(metadata, in_channels=8, out_channels=4, dtype=torch.float64, **kwargs):
    torch.manual_seed(0)
    conv = RelationalGATConv(in_channels, out_channels, metadata, heads=2, dtype=dtype, **kwargs)
    if conv.bias is not None:
        torch.nn.init.uniform_(conv.bias, -1, 1)
    return conv


def test_matches_pyg_gat_conv():
    torch.manual_seed(0)
    x, edge_index = torch.randn(10, 8), torch.randint(0, 10, (2, 30))
    reference = GATConv(8, 6, heads=2)
    conv = RelationalGATConv(8, 6, (["n"], [("n", "e", "n")]), heads=2)
    with torch.no_grad():
        conv.weight[0] = reference.lin.weight.T
        reference.bias.uniform_(-1, 1)
        conv.bias.copy_(reference.bias)
        conv.att_src[0] = reference.att_src[0]
        conv.att_dst[0] = reference.att_dst[0]
    out, weights = conv({"n": x}, {("n", "e", "n"): edge_index}, return_attention_weights=True)
    expected, (expected_index, expected_alpha) = reference(x, edge_index, return_attention_weights=True)
    torch.testing.assert_close(out["n"], expected)
    index, alpha = weights["n", "e", "n"]
    assert torch.equal(index, expected_index)
    assert alpha.shape == (expected_index.size(1), 2)
    torch.testing.assert_close(alpha, expected_alpha)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_dense_matches_sparse(options, metadata, flat_graph, sparse_graph, features):
    conv = make(metadata, **options)
    x = features(flat_graph, 8)
    torch.testing.assert_close(conv(x, flat_graph), conv(x, sparse_graph))


@pytest.mark.parametrize("options", OPTIONS[:3], ids=str)
def test_sorted_block_path_matches_sparse(options, metadata, flat_graph, sparse_graph, features, monkeypatch):
    monkeypatch.setattr(bipartite, "SORTED_BLOCK_SIZE", 1)  # every block takes the O(n log n) path
    conv = make(metadata, **options)
    x = features(flat_graph, 8).requires_grad_()
    out, out_sparse = conv(x, flat_graph), conv(x, sparse_graph)
    torch.testing.assert_close(out, out_sparse)
    grads = torch.autograd.grad(out.square().sum(), [x, *conv.parameters()])
    grads_sparse = torch.autograd.grad(out_sparse.square().sum(), [x, *conv.parameters()])
    for grad, grad_sparse in zip(grads, grads_sparse, strict=True):
        torch.testing.assert_close(grad, grad_sparse)


@pytest.mark.parametrize("softmax", ["node", "relation"])
def test_attention_weights_dense_matches_sparse(softmax, metadata, flat_graph, sparse_graph, features):
    conv = make(metadata, softmax=softmax)
    x = features(flat_graph, 8)
    out, weights = conv(x, flat_graph, return_attention_weights=True)
    out_sparse, weights_sparse = conv(x, sparse_graph, return_attention_weights=True)
    torch.testing.assert_close(out, out_sparse)
    assert list(weights) == list(metadata[1])
    for edge_type, (index, alpha) in weights.items():
        index_sparse, alpha_sparse = weights_sparse[edge_type]
        assert torch.equal(index, index_sparse)
        torch.testing.assert_close(alpha, alpha_sparse)
        assert alpha.shape == (index.size(1), 2) and bool((alpha >= 0).all())
    # the weights of each destination sum to one over all incoming relations (or within each relation)
    for t, node_type in enumerate(metadata[0]):
        totals = []
        for edge_type, (index, alpha) in weights.items():
            if edge_type[2] == node_type:
                total = alpha.new_zeros(flat_graph.num_nodes_per_type[t], 2).index_add(0, index[1], alpha)
                totals.append(total)
                if softmax == "relation":
                    received = torch.bincount(index[1], minlength=total.size(0)) > 0
                    torch.testing.assert_close(total[received], torch.ones_like(total[received]))
        if softmax == "node":
            total = sum(totals)
            torch.testing.assert_close(total, torch.ones_like(total))  # self loops: every node has an edge


@pytest.mark.parametrize("dense", [True, False])
def test_gradcheck(dense, tiny_batch, metadata, features, gradcheck):
    graph = FlatGraph.from_batch(tiny_batch, metadata, dense=dense)
    conv = make(metadata, 3, 2, softmax="relation" if dense else "node", root_weight=True)
    gradcheck(conv, features(graph, 3), graph)


def test_permutation_equivariance(metadata, assert_permutation_equivariant):
    assert_permutation_equivariant(make(metadata), 8)
    assert_permutation_equivariant(make(metadata, softmax="relation", aggr="mean"), 8, node_type="text", sample=0)


def test_no_cross_sample_leakage(metadata, flat_graph, sparse_graph, assert_no_leakage):
    conv = make(metadata, dtype=None, root_weight=True)
    for graph in (flat_graph, sparse_graph):
        assert_no_leakage(conv, graph, 8)


def test_single_node_sample(metadata, single_node_batch, assert_batched_equals_single):
    assert_batched_equals_single(make(metadata), single_node_batch, metadata, 8)


def test_batched_equals_single(metadata, batch, assert_batched_equals_single):
    assert_batched_equals_single(make(metadata, softmax="relation"), batch, metadata, 8)


def test_node_type_missing_from_batch(metadata, no_audio_batch, assert_missing_type_ok):
    assert_missing_type_ok(make(metadata), no_audio_batch, metadata, 8, 8)


def test_bf16_autocast(metadata, flat_graph, assert_bf16_close):
    assert_bf16_close(make(metadata, 16, 8, dtype=None), flat_graph, 16)


def test_dropout_only_in_training(metadata, flat_graph, features):
    conv = make(metadata, dropout=0.5)
    x = features(flat_graph, 8)
    conv.eval()
    torch.testing.assert_close(conv(x, flat_graph), conv(x, flat_graph))
    conv.train()
    assert not torch.allclose(conv(x, flat_graph), conv(x, flat_graph))


def test_wrong_in_channels(metadata, flat_graph, features):
    with pytest.raises(ValueError, match=r"'RelationalGATConv' was built for 8 input channels .* with 5"):
        make(metadata)(features(flat_graph, 5), flat_graph)


def test_wrong_arguments(metadata):
    with pytest.raises(ValueError, match="softmax"):
        RelationalGATConv(8, 4, metadata, softmax="edge")
    with pytest.raises(ValueError, match="'RelationalGATConv' needs a positive integer 'heads'"):
        RelationalGATConv(8, 4, metadata, heads=0)


def test_repr(metadata):
    assert repr(RelationalGATConv(16, 4, metadata, heads=4)) == (
        "RelationalGATConv(16, 4, heads=4, num_relations=9, softmax='node')")
