"""Graphs shared by the conversion tests."""
import pytest
import torch
from torch_geometric.data import HeteroData


@pytest.fixture(params=["one sample", "batch"])
def graph(request, builder, samples):
    """A built sample graph, then a collated batch of all the samples."""
    return builder.build(samples[0]) if request.param == "one sample" else builder.collate(samples)


@pytest.fixture
def unordered_edges():
    """Two node types, one without tensors; edges out of source order, a repeated edge, edge features."""
    data = HeteroData()
    data["a"].x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    data["b"].num_nodes = 3
    data["a", "r", "b"].edge_index = torch.tensor([[1, 0, 1, 1], [2, 0, 2, 1]])
    data["a", "r", "b"].edge_attr = torch.arange(8, dtype=torch.int32).view(4, 2)
    data["a", "r", "b"].edge_weight = torch.tensor([0.5, 1.5, 2.5, 3.5])
    data["b", "s", "b"].edge_index = torch.empty(2, 0, dtype=torch.long)
    return data


@pytest.fixture
def two_graphs_three_tokens(builder):
    """A batch whose 'text' ``ptr`` has as many entries as there are text nodes, though it is not node-level."""
    batch = builder.collate([{"text": ["a"]}, {"text": ["red", "square"]}])
    assert batch["text"].ptr.numel() == batch["text"].num_nodes == 3
    return batch
