import pytest
import torch
from torch_geometric.nn import GATConv

from graphfuse.nn import RelationalGATConv
from graphfuse.nn.conv import KernelRules

PATHS = ["fused", "reference"]


@pytest.mark.parametrize("path", PATHS)
def test_matches_pyg_gat_conv(path):
    torch.manual_seed(0)
    x, edge_index = torch.randn(10, 8), torch.randint(0, 10, (2, 30))
    reference = GATConv(8, 6, heads=2)
    conv = RelationalGATConv(8, 6, (["n"], [("n", "e", "n")]), heads=2, path=path)
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


@pytest.mark.parametrize("options", [{}, {"softmax": "relation"}, {"softmax": "relation", "aggr": "mean"}], ids=str)
def test_sorted_block_path_matches_sparse(options, metadata, flat_graph, sparse_graph, features):
    torch.manual_seed(0)
    every_block_sorted = KernelRules(sorted_min_block=1)  # every block takes the O(n log n) path
    conv = RelationalGATConv(8, 4, metadata, heads=2, dtype=torch.float64, rules=every_block_sorted, **options)
    torch.nn.init.uniform_(conv.bias, -1, 1)
    x = features(flat_graph, 8).requires_grad_()
    out, out_sparse = conv(x, flat_graph), conv(x, sparse_graph)
    torch.testing.assert_close(out, out_sparse)
    grads = torch.autograd.grad(out.square().sum(), [x, *conv.parameters()])
    grads_sparse = torch.autograd.grad(out_sparse.square().sum(), [x, *conv.parameters()])
    for grad, grad_sparse in zip(grads, grads_sparse, strict=True):
        torch.testing.assert_close(grad, grad_sparse)


def test_wrong_arguments(metadata):
    with pytest.raises(ValueError, match="softmax"):
        RelationalGATConv(8, 4, metadata, softmax="edge")
    with pytest.raises(ValueError, match="'RelationalGATConv' needs a positive integer 'heads'"):
        RelationalGATConv(8, 4, metadata, heads=0)


def test_repr(metadata):
    assert repr(RelationalGATConv(16, 4, metadata, heads=4)) == (
        "RelationalGATConv(16, 4, heads=4, num_relations=9, softmax='node')")
