import pytest
import torch

from graphfuse.nn import FlatGraph
from graphfuse.nn.flat import Schema

CROSS = [("text", "to", "image"), ("image", "to", "text"), ("text", "to", "audio"), ("audio", "to", "text"),
         ("image", "to", "audio"), ("audio", "to", "image")]


def from_batch_dicts(batch, metadata, edge_index_dict=None, dense=True):
    sizes = {t: batch[t].num_nodes for t in batch.node_types}
    batch_dict = {t: batch[t].batch for t in batch.node_types}
    return FlatGraph.from_dicts(metadata, sizes, edge_index_dict or batch.edge_index_dict, batch_dict, dense=dense)


def test_complete_bipartite_detection(flat_graph, sparse_graph, metadata):
    dense = dict(zip(metadata[1], flat_graph.dense, strict=True))
    assert [e for e, d in dense.items() if d] == CROSS  # cross relations, not the sequences / grid
    assert not any(sparse_graph.dense)
    assert flat_graph.dense_blocks() is not None and sparse_graph.dense_blocks() is None
    assert flat_graph.sparse_edges(include_dense=True).num_edges == sparse_graph.sparse_edges().num_edges
    assert flat_graph.num_samples == 4 and flat_graph.num_nodes == sum(flat_graph.num_nodes_per_type)


@pytest.mark.parametrize("edge_type", [("text", "to", "image"), ("audio", "to", "image")])
def test_shuffled_relation_is_not_dense(batch, metadata, edge_type):
    edges = dict(batch.edge_index_dict)
    ei = edges[edge_type]
    edges[edge_type] = ei[:, torch.randperm(ei.size(1), generator=torch.Generator().manual_seed(0))]
    graph = from_batch_dicts(batch, metadata, edges)
    dense = dict(zip(metadata[1], graph.dense, strict=True))
    assert not dense[edge_type]
    assert all(dense[e] for e in CROSS if e != edge_type)


def test_missing_edge_is_not_dense(batch, metadata):
    edges = dict(batch.edge_index_dict)
    edges["text", "to", "image"] = edges["text", "to", "image"][:, 1:]
    graph = from_batch_dicts(batch, metadata, edges)
    assert not graph.dense[metadata[1].index(("text", "to", "image"))]


def test_edge_across_samples_is_not_dense(batch, metadata):
    """In order and of the right count, but one edge joins two samples."""
    edges = dict(batch.edge_index_dict)
    ei = edges["text", "to", "image"].clone()
    last = int((batch["text"].batch[ei[0]] == 0).sum()) - 1  # the last edge of sample 0
    ei[1, last] = int((batch["image"].batch == 0).sum())  # to the first image node of the next sample
    edges["text", "to", "image"] = ei
    graph = from_batch_dicts(batch, metadata, edges)
    assert not graph.dense[metadata[1].index(("text", "to", "image"))]


def test_from_dicts_matches_from_batch(batch, metadata, flat_graph):
    graph = from_batch_dicts(batch, metadata)
    assert graph.dense == flat_graph.dense
    assert graph.num_nodes_per_type == flat_graph.num_nodes_per_type
    assert torch.equal(graph.node_batch, flat_graph.node_batch)


def test_flatten_unflatten_round_trip(flat_graph, batch):
    x_dict = {t: torch.randn(batch[t].num_nodes, 5) for t in batch.node_types}
    flat = flat_graph.flatten(x_dict)
    assert flat.shape == (flat_graph.num_nodes, 5)
    back = flat_graph.unflatten(flat)
    assert list(back) == list(flat_graph.schema.node_types)
    for t in x_dict:
        assert torch.equal(back[t], x_dict[t])
    assert torch.equal(flat_graph.flatten(back), flat)
    # the flat layout is type after type, so node_batch follows the batch vectors
    assert torch.equal(flat_graph.node_batch, torch.cat([batch[t].batch for t in flat_graph.schema.node_types]))


def test_node_type_absent_from_dicts(metadata):
    edges = {("text", "seq", "text"): torch.tensor([[0, 1], [1, 0]])}
    graph = FlatGraph.from_dicts(metadata, {"text": 2}, edges, {"text": torch.tensor([0, 0])})
    assert graph.num_nodes_per_type == [2, 0, 0]
    assert not any(graph.dense)
    x = torch.randn(2, 3)
    assert torch.equal(graph.flatten({"text": x}), x)
    out = graph.unflatten(x)
    assert out["image"].shape == (0, 3) and out["audio"].shape == (0, 3)


def test_empty_batch_raises(metadata):
    with pytest.raises(ValueError, match="empty batch"):
        FlatGraph.from_dicts(metadata, {}, {})


def test_mismatched_feature_sizes_raise(flat_graph, batch):
    x_dict = {t: torch.randn(batch[t].num_nodes, 4) for t in batch.node_types}
    x_dict["audio"] = torch.randn(batch["audio"].num_nodes, 6)
    with pytest.raises(ValueError, match="one feature size") as info:
        flat_graph.flatten(x_dict)
    assert "'image'" in str(info.value) and "'audio'" in str(info.value)


def test_missing_features_raise(flat_graph, batch):
    x_dict = {t: torch.randn(batch[t].num_nodes, 4) for t in ("text", "image")}
    with pytest.raises(ValueError, match="'audio'"):
        flat_graph.flatten(x_dict)


def test_unknown_edge_type_raises(batch, metadata):
    edges = {**batch.edge_index_dict, ("text", "oops", "audio"): torch.zeros(2, 0, dtype=torch.long)}
    with pytest.raises(ValueError, match="oops"):
        from_batch_dicts(batch, metadata, edges)


def test_unknown_node_type_raises(metadata):
    with pytest.raises(ValueError, match="video"):
        FlatGraph.from_dicts(metadata, {"text": 2, "video": 3}, {})


def test_unsorted_batch_vector_raises(metadata):
    with pytest.raises(ValueError, match="sorted") as info:
        FlatGraph.from_dicts(metadata, {"text": 3}, {}, {"text": torch.tensor([1, 0, 1])})
    assert "'text'" in str(info.value)


def test_batch_vector_of_wrong_size_raises(metadata):
    with pytest.raises(ValueError, match="one entry per node"):
        FlatGraph.from_dicts(metadata, {"text": 3}, {}, {"text": torch.tensor([0, 1])})


@pytest.mark.parametrize("edge_index", [[[0, 3], [1, 0]], [[0, 1], [1, 2]], [[0, -1], [1, 0]]])
def test_out_of_range_edge_index_raises(metadata, edge_index):
    edges = {("text", "to", "image"): torch.tensor(edge_index)}
    with pytest.raises(ValueError, match="points outside") as info:
        FlatGraph.from_dicts(metadata, {"text": 3, "image": 2}, edges, dense=False)
    assert "('text', 'to', 'image')" in str(info.value)


def test_out_of_range_edge_index_raises_with_dense(metadata):
    edges = {("text", "to", "image"): torch.tensor([[0, 3], [1, 0]])}
    with pytest.raises(ValueError, match="points outside"):
        FlatGraph.from_dicts(metadata, {"text": 3, "image": 2}, edges)


def test_float_edge_index_raises(metadata):
    with pytest.raises(TypeError, match="long tensor"):
        FlatGraph.from_dicts(metadata, {"text": 2}, {("text", "seq", "text"): torch.tensor([[0.0], [1.0]])})


def test_with_edges_keeps_nodes(flat_graph, metadata):
    edge_type = ("text", "to", "image")
    graph = flat_graph.with_edges({edge_type: torch.tensor([[0], [0]])})
    r = metadata[1].index(edge_type)
    assert graph.num_nodes == flat_graph.num_nodes and graph.edge_index[r].shape == (2, 1)
    assert not graph.dense[r] and flat_graph.dense[r]
    assert flat_graph.edge_index[r].size(1) > 1  # the original is untouched


def test_repr(tiny_batch, metadata):
    graph = FlatGraph.from_batch(tiny_batch, metadata, dense=False)
    assert repr(graph) == "FlatGraph(num_nodes=14, num_samples=2, num_relations=9, dense=[])"


@pytest.mark.parametrize("metadata", [["text", "image"], ("text", [("text", "to")]), (["text"], "edges"), None],
                         ids=["node types alone", "a pair for a triple", "a string of edges", "none"])
def test_metadata_of_another_shape_is_refused(metadata):
    with pytest.raises(TypeError, match=r"metadata must be \(node_types, edge_types\) as HeteroData.metadata\(\) or "
                                        r"builder.metadata\(\) gives"):
        Schema.from_metadata(metadata)


def test_from_batch_refuses_what_is_no_pyg_graph(batch, metadata):
    with pytest.raises(TypeError, match="FlatGraph.from_batch takes a PyG HeteroData or its Batch .*got dict; for "
                                        "dicts of edges use FlatGraph.from_dicts"):
        FlatGraph.from_batch({"text": batch["text"].x}, metadata)
