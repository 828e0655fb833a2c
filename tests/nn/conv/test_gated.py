import pytest
import torch

from graphfuse.nn import FlatGraph, GatedRelationalConv


@pytest.mark.parametrize("path", ["fused", "reference"])
def test_relation_without_edges_contributes_nothing(path, metadata, features):
    """A node whose only relation brings no edges gets its root term and bias alone."""
    graph = FlatGraph.from_dicts(metadata, {"text": 3}, {}, {"text": torch.tensor([0, 0, 1])})
    torch.manual_seed(0)
    conv = GatedRelationalConv(8, 6, metadata, dtype=torch.float64, path=path)
    with torch.no_grad():
        conv.gate_bias.uniform_(-1, 1)
        conv.bias.uniform_(-1, 1)
    x = features(graph, 8)
    torch.testing.assert_close(conv(x, graph), x @ conv.root[0] + conv.bias)


def test_repr(metadata):
    assert repr(GatedRelationalConv(16, 8, metadata)) == "GatedRelationalConv(16, 8, num_relations=9)"
