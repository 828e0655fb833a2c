"""Properties of the graph builder over random builders and samples (hypothesis): a sample's graph holds
every node type and relation of the builder, its nodes are the sample's node sets, its intra-modal edges
theirs, and each cross-modal relation follows its strategy (checked by brute force); featurising many
samples at once equals one at a time; a saved and loaded builder builds the same graphs; anything else
is a documented error."""
import tempfile

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from properties import builders, outcome, samples

from graphfuse.data import FullBipartite, GraphBuilder, RandomBipartite, StridedBipartite, TemporalAlignment
from graphfuse.testing import assert_same_graph

pytestmark = pytest.mark.usefixtures("one_thread")
REFUSALS = ("has none of the modalities", "over max_edges_per_sample")


def assert_same_nodes(actual, expected, where) -> None:
    """The same node-level tensors (NaN, an unknown time span, equal to NaN)."""
    for attribute, value in expected.attributes().items():
        torch.testing.assert_close(actual[attribute], value, rtol=0, atol=0, equal_nan=True,
                                   msg=lambda message, attribute=attribute: f"{where} {attribute}: {message}")


def expected_cross_edges(strategy, src, dst) -> set | None:
    """The edges ``strategy`` must give between node sets ``src`` and ``dst`` (``None``: only counts are fixed)."""
    if isinstance(strategy, FullBipartite):
        return {(i, j) for i in range(src.num_nodes) for j in range(dst.num_nodes)}
    if isinstance(strategy, TemporalAlignment):
        w, sources, targets = strategy.window, enumerate(src.time.tolist()), list(enumerate(dst.time.tolist()))
        return {(i, j) for i, (s_i, e_i) in sources for j, (s_j, e_j) in targets
                if s_i - w < e_j and s_j < e_i + w}  # NaN (unknown) spans compare False: no edges
    return None


def check_cross_edges(strategy, edges: set, src, dst) -> None:
    expected = expected_cross_edges(strategy, src, dst)
    if expected is not None:
        assert edges == expected
        return
    assert isinstance(strategy, (StridedBipartite, RandomBipartite))
    per_node = min(strategy.budget, src.num_nodes)  # distinct sources for every destination
    assert sorted(edges) == sorted(set(edges))
    for j in range(dst.num_nodes):
        assert len({i for i, target in edges if target == j}) == per_node


@given(data=st.data())
def test_a_graph_is_its_node_sets_joined_as_the_strategies_say(data):
    builder = data.draw(builders(), "builder")
    sample = data.draw(samples(builder), "sample")
    graph, error = outcome(builder.build, sample)
    if error is not None:
        assert any(reason in str(error) for reason in REFUSALS), error
        return
    assert graph.metadata() == builder.metadata()
    nodes = builder.featurize(sample)
    sets = {**nodes, **builder._virtual_node_sets}
    for node_type in builder.node_types:
        assert_same_nodes(graph[node_type], sets.get(node_type, builder.empty_node_sets[node_type]), node_type)
    for relation in builder.relations:
        src, _, dst = relation.edge_type
        edge_index = graph[relation.edge_type].edge_index
        assert edge_index.dtype == torch.long and edge_index.dim() == 2 and edge_index.size(0) == 2
        if src not in sets or dst not in sets:
            assert edge_index.size(1) == 0, relation.edge_type
        elif relation.strategy is None:
            assert torch.equal(edge_index, sets[src].edge_index)
        else:
            check_cross_edges(relation.strategy, set(map(tuple, edge_index.t().tolist())), sets[src], sets[dst])


@given(data=st.data())
def test_featurize_many_equals_one_at_a_time(data):
    builder = data.draw(builders(capped=False), "builder")
    batch = data.draw(st.lists(samples(builder, empty=False), min_size=1, max_size=4), "samples")
    for together, alone in zip(builder.featurize_many(batch), map(builder.featurize, batch), strict=True):
        assert together.keys() == alone.keys()
        for key in alone:
            assert_same_nodes(together[key].attributes(), alone[key], key)
            assert torch.equal(together[key].edge_index, alone[key].edge_index)


@given(data=st.data())
def test_a_saved_builder_builds_the_same_graphs(data):
    builder = data.draw(builders(), "builder")
    with tempfile.TemporaryDirectory() as folder:
        loaded = GraphBuilder.load(builder.save(folder))
    assert loaded.metadata() == builder.metadata()
    for sample in data.draw(st.lists(samples(builder, empty=False), min_size=1, max_size=3), "samples"):
        graph, error = outcome(builder.build, sample)
        again, error_again = outcome(loaded.build, sample)
        assert str(error) == str(error_again)
        if error is None:
            assert_same_graph(again, graph)


@given(data=st.data(), key=st.text(min_size=1, max_size=8))
def test_a_key_that_is_no_modality_is_named(data, key):
    builder = data.draw(builders(capped=False), "builder")
    sample = data.draw(samples(builder, empty=False), "sample")
    if key in builder.modalities:
        return
    _, error = outcome(builder.build, {**sample, key: "anything"}, names=("unknown modality", key))
    assert error is not None
    ignoring = GraphBuilder(builder.modalities, builder.cross, extra_keys="ignore")
    assert_same_graph(ignoring.build({**sample, key: "anything"}), ignoring.build(sample))
