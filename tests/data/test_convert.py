import networkx as nx
import pytest
import torch
from torch_geometric.data import Data, HeteroData

from graphfuse.data.convert import from_networkx, to_dgl, to_networkx
from graphfuse.testing import assert_same_graph
from graphfuse.typing import dgl_importable


def test_round_trip_is_exact(graph):
    data = graph
    G = to_networkx(data)
    assert isinstance(G, nx.MultiDiGraph)
    assert G.number_of_nodes() == data.num_nodes
    assert G.number_of_edges() == data.num_edges
    assert_same_graph(from_networkx(G), data, exclude=("ptr",))


def test_batch_keeps_batch_vector_not_ptr(two_graphs_three_tokens):
    batch = two_graphs_three_tokens
    G = to_networkx(batch)
    assert [G.nodes["text", index]["batch"].item() for index in range(3)] == [0, 1, 1]
    assert "ptr" not in G.nodes["text", 0] and "ptr" not in G.graph["schema"]["node_types"]["text"]
    back = from_networkx(G)
    assert torch.equal(back["text"].batch, batch["text"].batch)
    assert "ptr" not in back["text"]


def test_missing_modality_keeps_zero_node_types(builder, samples):
    data = builder.build(samples[2])  # no text
    G = to_networkx(data)
    assert not [node for node, node_type in G.nodes(data="type") if node_type == "text"]
    assert {relation for _, _, relation in G.edges(data="relation")} == {
        ("image", "grid", "image"), ("audio", "seq", "audio"), ("image", "to", "audio"), ("audio", "to", "image")}
    back = from_networkx(G)
    assert back["text"].x.shape == (0,) and back["text"].x.dtype == torch.long
    assert back["text"].time.shape == (0, 2) and back["text"].time.dtype == torch.float32
    assert back["text", "to", "image"].edge_index.shape == (2, 0)
    assert back.metadata() == builder.metadata()
    assert_same_graph(back, data, exclude=("ptr",))


def test_unknown_times_stay_nan(builder, samples):
    data = builder.build(samples[1])  # text without spans
    assert data["text"].time.isnan().all()
    G = to_networkx(data)
    assert G.nodes["text", 0]["time"].isnan().all()
    back = from_networkx(G)
    assert back["text"].time.shape == data["text"].time.shape
    assert back["text"].time.isnan().all()
    assert_same_graph(back, data, exclude=("ptr",))


def test_node_and_edge_attributes(builder, samples):
    data = builder.build(samples[0])
    G = to_networkx(data)
    node = G.nodes["image", 1]
    assert set(node) == {"type", "x", "pos"}
    assert node["type"] == "image"
    assert torch.equal(node["x"], data["image"].x[1]) and torch.equal(node["pos"], data["image"].pos[1])
    assert node["pos"].dtype == torch.long
    for edge_type in data.edge_types:
        edges = [(u, v, attributes["id"]) for u, v, attributes in G.edges(data=True)
                 if attributes["relation"] == edge_type]
        edge_index = data[edge_type].edge_index
        assert sorted(index for _, _, index in edges) == list(range(edge_index.size(1)))
        src, _, dst = edge_type
        assert sorted((index, u, v) for u, v, index in edges) == [
            (index, (src, int(i)), (dst, int(j))) for index, (i, j) in enumerate(edge_index.t())]
    assert G.graph["schema"]["node_types"]["text"] == {
        "x": (torch.long, ()), "pos": (torch.long, ()), "time": (torch.float32, (2,))}
    assert list(G.graph["schema"]["edge_types"]) == data.edge_types


def test_rows_are_copies(builder, samples):
    data = builder.build(samples[0])
    before = data["image"].x.clone()
    to_networkx(data).nodes["image", 0]["x"].fill_(-1.0)
    assert torch.equal(data["image"].x, before)


def test_edge_features_order_and_repeated_edges_round_trip(unordered_edges):
    data = unordered_edges
    G = to_networkx(data)
    assert G.number_of_edges() == 4  # the repeated edge 1 -> 2 stays two edges
    assert G.number_of_edges(("a", 1), ("b", 2)) == 2
    assert set(G.nodes["b", 0]) == {"type"}
    back = from_networkx(G)
    assert back.metadata() == data.metadata()
    assert back["b"].num_nodes == 3
    assert_same_graph(back, data, exclude=("ptr",))


def test_schema_dtypes_apply_to_edited_rows(unordered_edges):
    G = to_networkx(unordered_edges)
    (_, _, attributes), *_ = G.edges(data=True)
    attributes["edge_attr"] = [7, 7]  # a list would become int64
    data = from_networkx(G)
    assert data["a", "r", "b"].edge_attr.dtype == torch.int32
    assert [7, 7] in data["a", "r", "b"].edge_attr.tolist()


def test_hand_built_tabular_graph():
    G = nx.DiGraph()
    for column, name in enumerate(["age", "income", "city"]):
        G.add_node(name, type="field", x=[float(column), 1.0], column=column)
    G.add_node("row0", type="record", x=torch.zeros(4))
    G.add_node("row1", type="record", x=torch.ones(4))
    G.add_edge("age", "row0", relation="in", weight=0.5)
    G.add_edge("income", "row0", relation=("field", "in", "record"), weight=1)
    G.add_edge("city", "row1", relation="in", weight=2.0)
    G.add_edge("row0", "row1")  # no relation: 'to'
    data = from_networkx(G)
    assert data.node_types == ["field", "record"]
    assert set(data.edge_types) == {("field", "in", "record"), ("record", "to", "record")}
    assert data["field"].x.shape == (3, 2) and data["field"].x.dtype == torch.float32
    assert data["field"].x[:, 0].tolist() == [0.0, 1.0, 2.0]  # insertion order
    assert data["field"].column.tolist() == [0, 1, 2] and data["field"].column.dtype == torch.long
    assert data["record"].x.shape == (2, 4)
    assert data["field", "in", "record"].edge_index.tolist() == [[0, 1, 2], [0, 0, 1]]
    assert data["field", "in", "record"].weight.tolist() == [0.5, 1.0, 2.0]
    assert data["record", "to", "record"].edge_index.tolist() == [[0], [1]]


def test_hand_built_node_types_without_features():
    G = nx.MultiDiGraph()
    G.add_nodes_from([("u", {"type": "user"}), ("v", {"type": "user"}), ("i", {"type": "item"})])
    G.add_edge("u", "i", relation="likes")
    G.add_edge("v", "i", relation="likes")
    data = from_networkx(G)
    assert data["user"].num_nodes == 2 and data["item"].num_nodes == 1
    assert data["user", "likes", "item"].edge_index.tolist() == [[0, 1], [0, 0]]


def test_edge_ids_set_the_edge_order():
    G = nx.MultiDiGraph()
    G.add_nodes_from([(name, {"type": "n"}) for name in "abc"])
    G.add_edge("a", "b", id=2, w=2.0)
    G.add_edge("a", "c", id=0, w=0.0)
    G.add_edge("b", "c", id=1, w=1.0)
    data = from_networkx(G)
    assert data["n", "to", "n"].edge_index.tolist() == [[0, 1, 0], [2, 2, 1]]
    assert data["n", "to", "n"].w.tolist() == [0.0, 1.0, 2.0]
    assert "id" not in data["n", "to", "n"]


def test_wrong_input_types():
    with pytest.raises(TypeError, match="to_networkx expects a torch_geometric HeteroData, got Data; convert it "
                                        r"with data.to_heterogeneous\(\)"):
        to_networkx(Data(x=torch.zeros(2, 1)))
    with pytest.raises(TypeError, match="to_networkx expects a torch_geometric HeteroData, got dict"):
        to_networkx({"text": torch.zeros(2)})
    with pytest.raises(TypeError, match=r"directed networkx graph .* got Graph; its edges have no direction: call "
                                        r"G.to_directed\(\)"):
        from_networkx(nx.Graph([(0, 1)]))
    with pytest.raises(TypeError, match="directed networkx graph .* got HeteroData"):
        from_networkx(HeteroData())


def test_node_without_type():
    G = nx.DiGraph()
    G.add_node("a", type="field")
    G.add_node("b", x=1.0)
    with pytest.raises(ValueError, match=r"node 'b' has 'type'=None; set it, e.g. G.add_node\('b', type='field'\)"):
        from_networkx(G)


def test_attribute_on_some_nodes_or_edges_only():
    G = nx.DiGraph()
    G.add_node("a", type="field", x=1.0)
    G.add_node("b", type="field")
    with pytest.raises(ValueError, match="'x' is set on 1 of the 2 nodes of type 'field'; set it on all of them"):
        from_networkx(G)
    G.nodes["b"]["x"] = 2.0
    G.add_edge("a", "b", relation="near", w=1.0)
    G.add_edge("b", "a", relation="near")
    with pytest.raises(ValueError, match=r"'w' is set on 1 of the 2 edges of type \('field', 'near', 'field'\)"):
        from_networkx(G)


def test_relation_errors():
    G = nx.DiGraph()
    G.add_node("a", type="field")
    G.add_node("r", type="record")
    G.add_edge("a", "r", relation=("record", "in", "field"))
    with pytest.raises(ValueError, match=r"Edge 'a' -> 'r' has relation \('record', 'in', 'field'\), but joins a "
                                         r"'field' node to a 'record' node; set relation=\('field', 'in', 'record'\)"):
        from_networkx(G)
    G.edges["a", "r"]["relation"] = 3
    with pytest.raises(TypeError, match="Edge 'a' -> 'r' has relation=3; expected a relation name"):
        from_networkx(G)


def test_features_that_do_not_stack():
    G = nx.DiGraph()
    G.add_node("a", type="field", x=[1.0, 2.0])
    G.add_node("b", type="field", x=[1.0])
    with pytest.raises(ValueError, match=r"Cannot stack 'x' of the nodes of type 'field' into one tensor: their "
                                         r"shapes differ \(\[\(1,\), \(2,\)\]\)"):
        from_networkx(G)
    G.nodes["b"]["x"] = "one"
    with pytest.raises(TypeError, match="Cannot make 'x' of the nodes of type 'field' into tensors"):
        from_networkx(G)


def test_bad_schema_and_edge_ids():
    G = nx.DiGraph(schema="v2")
    G.add_node("a", type="n")
    with pytest.raises(ValueError, match=r"G.graph\['schema'\] must be the mapping to_networkx writes"):
        from_networkx(G)
    del G.graph["schema"]
    G.add_edge("a", "a", id=[0, 1])
    with pytest.raises(ValueError, match=r"Edge attribute 'id' must be one number per edge .* shape \(2,\)"):
        from_networkx(G)


@pytest.mark.parametrize("key, name, owner", [
    ("a", "type", "node type 'a'"),
    (("a", "r", "a"), "relation", r"edge type \('a', 'r', 'a'\)"),
    (("a", "r", "a"), "id", r"edge type \('a', 'r', 'a'\)"),
])
def test_reserved_attribute_names(key, name, owner):
    data = HeteroData()
    data["a"].x = torch.zeros(2)
    data["a", "r", "a"].edge_index = torch.tensor([[0], [1]])
    data[key][name] = torch.zeros(data[key].num_nodes if isinstance(key, str) else 1)
    with pytest.raises(ValueError, match=f"cannot carry the attribute '{name}' of {owner}: .* reserved"):
        to_networkx(data)


def test_invalid_heterodata():
    data = HeteroData()
    data["a"].x = torch.zeros(2)
    data["a", "r", "a"].edge_index = torch.tensor([[0], [2]])
    with pytest.raises(ValueError, match=r"edge_index of \('a', 'r', 'a'\) index nodes out of range"):
        to_networkx(data)
    data["a", "r", "a"].edge_index = torch.tensor([[0], [1]])
    data["a", "r", "b"].edge_index = torch.tensor([[0], [0]])
    with pytest.raises(ValueError, match=r"edge type \('a', 'r', 'b'\) names node type 'b', which the graph lacks"):
        to_networkx(data)
    del data["a", "r", "b"]
    data["a", "s", "a"].edge_attr = torch.zeros(1, 3)
    with pytest.raises(ValueError, match=r"needs 'edge_index' on every edge type, but \('a', 's', 'a'\) has none"):
        to_networkx(data)


@pytest.mark.filterwarnings("ignore:Unable to accurately infer 'num_nodes'")
def test_unknown_node_count():
    data = HeteroData()
    data["a"].label = torch.tensor(1)
    with pytest.raises(ValueError, match=r"cannot tell how many nodes of type 'a' there are; set "
                                         r"data\['a'\].num_nodes"):
        to_networkx(data)


@pytest.mark.skipif(dgl_importable(), reason="DGL is importable here")
def test_to_dgl_without_dgl_says_how_to_install(builder, samples):
    with pytest.raises(ImportError, match=r"graphfuse\[dgl\]"):
        to_dgl(builder.build(samples[0]))
