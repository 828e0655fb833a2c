import pytest
import torch
from torch_geometric.nn import GCNConv
from torch_geometric.utils import remove_self_loops, to_undirected

from graphfuse.nn import RelationalGCNConv

PATHS = ["fused", "reference"]


@pytest.mark.parametrize("path", PATHS)
def test_matches_pyg_gcn_conv(path):
    torch.manual_seed(0)
    edge_index = to_undirected(remove_self_loops(torch.randint(0, 12, (2, 40)))[0])
    x = torch.randn(12, 8)
    reference = GCNConv(8, 5)
    conv = RelationalGCNConv(8, 5, (["n"], [("n", "e", "n")]), add_self_loops=True, root_weight=False, path=path)
    with torch.no_grad():
        conv.weight[0] = reference.lin.weight.T
        conv.bias.copy_(torch.randn(5))
        reference.bias.copy_(conv.bias)
    out = conv({"n": x}, {("n", "e", "n"): edge_index})
    torch.testing.assert_close(out["n"], reference(x, edge_index))


@pytest.mark.slow  # about 20 s of compilation on CPU
def test_torch_compile_matches_eager(metadata, flat_graph, features):
    torch.manual_seed(0)
    conv = RelationalGCNConv(8, 8, metadata)
    x = features(flat_graph, 8, torch.float32)
    compiled = torch.compile(conv)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, flat_graph), conv(x, flat_graph), rtol=1e-4, atol=1e-5)


def test_wrong_arguments(metadata, flat_graph, features):
    with pytest.raises(ValueError, match="aggr"):
        RelationalGCNConv(8, 6, metadata, aggr="max")
    with pytest.raises(ValueError, match="'RelationalGCNConv' needs a positive integer 'in_channels'"):
        RelationalGCNConv(0, 6, metadata)
    with pytest.raises(TypeError, match="FlatGraph"):
        RelationalGCNConv(8, 6, metadata)(features(flat_graph, 8, torch.float32), {})
    other = RelationalGCNConv(8, 6, (["text"], [("text", "seq", "text")]))
    with pytest.raises(ValueError, match="metadata"):
        other(features(flat_graph, 8, torch.float32), flat_graph)


def test_repr(metadata):
    assert repr(RelationalGCNConv(16, 8, metadata)) == "RelationalGCNConv(16, 8, num_relations=9, aggr='sum')"
    assert repr(RelationalGCNConv(4, 2, metadata, aggr="mean")) == (
        "RelationalGCNConv(4, 2, num_relations=9, aggr='mean')")
