import pytest
import torch
from torch_geometric.nn import HGTConv

from graphfuse.nn import RelationalHGTConv

PATHS = ["fused", "reference"]


def make(metadata, in_channels=8, out_channels=8, dtype=torch.float64, **kwargs):
    torch.manual_seed(0)
    conv = RelationalHGTConv(in_channels, out_channels, metadata, heads=2, dtype=dtype, **kwargs)
    with torch.no_grad():  # non-trivial priors and skip gates
        conv.p_rel.uniform_(0.5, 1.5)
        conv.skip.uniform_(-1, 1)
    return conv


def copy_from_pyg(conv, reference, metadata):
    node_types, edge_types = metadata
    R, H = len(edge_types), conv.heads
    with torch.no_grad():
        for t, node_type in enumerate(node_types):
            conv.kqv_weight[t] = reference.kqv_lin.lins[node_type].weight.T
            conv.kqv_bias[t] = reference.kqv_lin.lins[node_type].bias
            conv.out_weight[t] = reference.out_lin.lins[node_type].weight.T
            conv.out_bias[t] = reference.out_lin.lins[node_type].bias
            conv.skip[t] = reference.skip[node_type]
        for r, edge_type in enumerate(edge_types):
            for h in range(H):
                conv.k_rel[r, h] = reference.k_rel.weight[h * R + r]
                conv.v_rel[r, h] = reference.v_rel.weight[h * R + r]
            conv.p_rel[r] = reference.p_rel["__".join(edge_type)][0]


@pytest.mark.parametrize("path", PATHS)
def test_matches_pyg_hgt_conv(path, batch, metadata, dicts):
    torch.manual_seed(0)
    reference = HGTConv(16, 16, metadata, heads=2)
    with torch.no_grad():  # non-unit priors and skips, also checked
        for r, edge_type in enumerate(metadata[1]):
            reference.p_rel["__".join(edge_type)].fill_(0.5 + 0.1 * r)
        for node_type in metadata[0]:
            reference.skip[node_type].fill_(-0.5)
    conv = RelationalHGTConv(16, 16, metadata, heads=2, path=path)
    copy_from_pyg(conv, reference, metadata)
    x_dict, edge_index_dict, batch_dict = dicts(16, torch.float32)
    out = conv(x_dict, edge_index_dict, batch_dict)
    expected = reference(x_dict, edge_index_dict)
    assert set(out) == set(expected)
    for node_type in expected:
        torch.testing.assert_close(out[node_type], expected[node_type])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("options", [{}, {"softmax": "relation"}], ids=str)
def test_dense_matches_sparse_without_skip(options, path, metadata, flat_graph, sparse_graph, features):
    """With in_channels != out_channels there is no skip gate (the conformance suite checks the rest)."""
    conv = make(metadata, 8, 6, path=path, **options)
    x = features(flat_graph, 8)
    out, weights = conv(x, flat_graph, return_attention_weights=True)
    out_sparse, weights_sparse = conv(x, sparse_graph, return_attention_weights=True)
    torch.testing.assert_close(out, out_sparse)
    for edge_type, (index, alpha) in weights.items():
        assert torch.equal(index, weights_sparse[edge_type][0])
        torch.testing.assert_close(alpha, weights_sparse[edge_type][1])


def test_heads_must_divide_out_channels(metadata):
    with pytest.raises(ValueError, match=r"'RelationalHGTConv' needs 'out_channels' \(6\) divisible"):
        RelationalHGTConv(8, 6, metadata, heads=4)


def test_repr(metadata):
    assert repr(RelationalHGTConv(16, 16, metadata, heads=4)) == (
        "RelationalHGTConv(16, 16, heads=4, num_relations=9, softmax='node')")
