import pytest
import torch

from graphfuse.data import NodeSet
from graphfuse.datasets import TaskData, list_tasks, load_task, register_task
from graphfuse.datasets.tasks import CROSS_BUDGET, canvas_builder, reading_order


def test_builtin_tasks_are_registered():
    assert {"digits", "retrieval", "synergy", "redundancy", "uniqueness", "redundant-digits", "match",
            "fashion"} <= set(list_tasks())


@pytest.mark.parametrize("name", ["synergy", "redundancy", "uniqueness"])
def test_interaction_tasks_load(name):
    task = load_task(name, quick=True)
    assert task.kind == "classification" and task.num_classes == 2
    assert (len(task.train), len(task.val), len(task.test)) == (600, 200, 300)
    graph = task.builder.build(task.train[0][0])
    assert set(graph.node_types) == {"m0", "m1"}
    assert not torch.equal(task.train[0][0]["m0"]["x"], task.test[0][0]["m0"]["x"])  # splits differ


def test_digits_task_builds_graphs_with_aligned_words():

    task = load_task("digits", quick=True)
    assert (len(task.train), len(task.val), len(task.test), task.num_classes) == (400, 100, 200, 10)
    sample, _ = task.train[0]
    graph = task.builder.build(sample)
    edges = graph["text", "to", "audio"].edge_index
    spans = torch.tensor(sample["text"]["spans"])
    frames = graph["audio"].time
    # every word reaches frames that overlap it, and only those
    overlap = (spans[edges[0], 0] < frames[edges[1], 1]) & (frames[edges[1], 0] < spans[edges[0], 1])
    assert overlap.all() and len(set(edges[0].tolist())) == 3


@pytest.mark.parametrize("name, sizes, classes, types", [
    ("redundant-digits", (400, 100, 200), 10, {"text", "image", "audio"}),
    ("match", (600, 100, 200), 2, {"image", "audio"}),
])
def test_tasks_without_pairing_join_every_pair_by_strided_edges(name, sizes, classes, types):
    task = load_task(name, quick=True)
    assert (len(task.train), len(task.val), len(task.test), task.num_classes) == (*sizes, classes)
    graph = task.builder.build(task.val[0][0])
    assert set(graph.node_types) == types and graph["image"].num_nodes == 4
    cross = [edge for edge in graph.edge_types if edge[1] == "to"]
    assert len(cross) == len(types) * (len(types) - 1)  # every pair, both ways
    for src, _, dst in cross:
        assert_strided(graph[src, "to", dst].edge_index, graph[src].num_nodes, graph[dst].num_nodes)


def assert_strided(edge_index, num_src, num_dst):
    """Every destination node hears CROSS_BUDGET distinct source nodes (all of them, when fewer)."""
    per_node = min(CROSS_BUDGET, num_src)
    assert edge_index.size(1) == num_dst * per_node
    for node in range(num_dst):
        sources = edge_index[0, edge_index[1] == node]
        assert len(set(sources.tolist())) == per_node


def test_retrieval_task_joins_each_word_to_its_quadrant():

    task = load_task("retrieval", quick=True)
    assert task.kind == "retrieval" and task.query == ("text",) and task.gallery == ("image",)
    graph = task.builder.build(task.test[0])
    edges = graph["text", "to", "image"].edge_index
    assert edges.tolist() == [[0, 1, 2, 3], [0, 1, 2, 3]]
    assert graph["image"].pos[edges[1]].tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]


def test_reading_order_pairs_index_by_index():
    no_edges = torch.zeros(2, 0, dtype=torch.long)
    src, dst = NodeSet(torch.zeros(3, 1), no_edges), NodeSet(torch.zeros(5, 1), no_edges)
    assert reading_order(src, dst).tolist() == [[0, 1, 2], [0, 1, 2]]
    assert canvas_builder().metadata()[1] == [("text", "seq", "text"), ("image", "grid", "image"),
                                              ("text", "to", "image"), ("image", "to", "text")]


def test_unknown_task_and_duplicates_are_refused():
    with pytest.raises(ValueError, match="Unknown benchmark task 'mnist'"):
        load_task("mnist")
    with pytest.raises(ValueError, match="already registered"):
        register_task("digits")(lambda quick=False, seed=0: None)


def test_task_data_is_checked():
    builder = canvas_builder()
    with pytest.raises(ValueError, match="'kind' must be one of"):
        TaskData("x", "ranking", builder, [], [], [])
    with pytest.raises(ValueError, match="needs 'num_classes'"):
        TaskData("x", "classification", builder, [], [], [])
