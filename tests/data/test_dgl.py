import subprocess
import sys

import pytest
import torch
from torch_geometric.data import Data, HeteroData

from graphfuse.data.convert import from_dgl, to_dgl
from graphfuse.testing import assert_same_graph, requires_dgl
from graphfuse.typing import import_dgl


@requires_dgl
def test_round_trip_is_exact(graph):
    data = graph
    g = to_dgl(data)
    assert isinstance(g, import_dgl().DGLGraph)
    assert set(g.ntypes) == set(data.node_types)
    assert set(g.canonical_etypes) == set(data.edge_types)
    assert {node_type: g.num_nodes(node_type) for node_type in g.ntypes} == {
        node_type: data[node_type].num_nodes for node_type in data.node_types}
    assert {edge_type: g.num_edges(edge_type) for edge_type in g.canonical_etypes} == {
        edge_type: data[edge_type].num_edges for edge_type in data.edge_types}
    assert torch.equal(g.nodes["image"].data["x"], data["image"].x)
    src, dst = g.edges(etype=("image", "to", "audio"), order="eid")
    assert torch.equal(torch.stack([src, dst]), data["image", "to", "audio"].edge_index)
    assert_same_graph(from_dgl(g), data, ordered=False, exclude=("ptr",))


@requires_dgl
def test_batch_keeps_batch_vector_not_ptr(two_graphs_three_tokens):
    batch = two_graphs_three_tokens
    g = to_dgl(batch)
    assert torch.equal(g.nodes["text"].data["batch"], batch["text"].batch)
    assert "ptr" not in g.nodes["text"].data
    assert "ptr" not in from_dgl(g)["text"]


@requires_dgl
def test_missing_modality_keeps_zero_node_types(builder, samples):
    data = builder.build(samples[2])  # no text
    g = to_dgl(data)
    assert g.num_nodes("text") == 0
    assert g.num_edges(("text", "to", "image")) == 0
    assert g.nodes["text"].data["time"].shape == (0, 2)
    back = from_dgl(g)
    assert back["text"].x.shape == (0,) and back["text"].x.dtype == torch.long
    assert_same_graph(back, data, ordered=False, exclude=("ptr",))


@requires_dgl
def test_unknown_times_stay_nan(builder, samples):
    data = builder.build(samples[1])  # text without spans
    g = to_dgl(data)
    assert g.nodes["text"].data["time"].isnan().all()
    assert from_dgl(g)["text"].time.isnan().all()


@requires_dgl
def test_edge_features_order_and_repeated_edges_round_trip(unordered_edges):
    data = unordered_edges
    g = to_dgl(data)
    assert g.num_edges(("a", "r", "b")) == 4 and g.num_nodes("b") == 3
    assert torch.equal(g.edges[("a", "r", "b")].data["edge_attr"], data["a", "r", "b"].edge_attr)
    assert dict(g.nodes["b"].data) == {}
    back = from_dgl(g)
    assert back["b"].num_nodes == 3
    assert_same_graph(back, data, ordered=False, exclude=("ptr",))


@requires_dgl
def test_from_homogeneous_int32_dgl_graph():
    dgl = import_dgl()
    g = dgl.graph((torch.tensor([2, 0]), torch.tensor([1, 2])), num_nodes=4, idtype=torch.int32)
    g.ndata["h"] = torch.arange(4.0)
    data = from_dgl(g)
    assert data.node_types == ["_N"] and data.edge_types == [("_N", "_E", "_N")]
    assert data["_N", "_E", "_N"].edge_index.tolist() == [[2, 0], [1, 2]]
    assert data["_N", "_E", "_N"].edge_index.dtype == torch.long
    assert data["_N"].h.tolist() == [0.0, 1.0, 2.0, 3.0]


@requires_dgl
def test_errors():
    with pytest.raises(TypeError, match=r"to_dgl expects a torch_geometric HeteroData, got Data; convert it with "
                                        r"data.to_heterogeneous\(\)"):
        to_dgl(Data(x=torch.zeros(2, 1)))
    with pytest.raises(TypeError, match="from_dgl expects a dgl.DGLGraph, got HeteroData"):
        from_dgl(HeteroData())
    data = HeteroData()
    data["a"].x = torch.zeros(2)
    with pytest.raises(ValueError, match="to_dgl needs at least one edge type"):
        to_dgl(data)
    data["a", "r", "a"].edge_index = torch.tensor([[0], [5]])
    with pytest.raises(ValueError, match=r"edge_index of \('a', 'r', 'a'\) index nodes out of range"):
        to_dgl(data)


@requires_dgl
def test_module_imports_without_loading_dgl():
    code = "import sys, graphfuse.data.convert; sys.exit('dgl' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
