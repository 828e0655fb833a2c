import itertools

import pytest
import torch

from graphfuse.data import (
    CallableStrategy,
    CrossEdges,
    FullBipartite,
    NodeSet,
    RandomBipartite,
    StridedBipartite,
    TemporalAlignment,
    VirtualNodes,
    resolve_strategy,
)
from graphfuse.data.cross import _RANDOM_CHUNK_ELEMENTS


def nodes(num_nodes, time=None):
    return NodeSet(x=torch.zeros(num_nodes, 1), edge_index=torch.empty(2, 0, dtype=torch.long),
                   time=None if time is None else torch.tensor(time, dtype=torch.float32))


def edge_set(edge_index):
    return set(map(tuple, edge_index.t().tolist()))


def sources_per_destination(edge_index, num_dst):
    return [sorted(edge_index[0, edge_index[1] == j].tolist()) for j in range(num_dst)]


def test_full_bipartite():
    strategy = FullBipartite()
    edges = strategy.edges(nodes(3), nodes(5))
    assert edge_set(edges) == set(itertools.product(range(3), range(5)))
    assert strategy.max_edges(3, 5) == 15
    assert strategy.shape_only


def test_temporal_alignment_joins_overlapping_spans():
    words = nodes(2, [[0.0, 0.3], [0.5, 0.6]])
    frames = nodes(4, [[0.0, 0.2], [0.2, 0.4], [0.4, 0.6], [0.6, 0.8]])
    assert edge_set(TemporalAlignment().edges(words, frames)) == {(0, 0), (0, 1), (1, 2)}
    widened = TemporalAlignment(window=0.15).edges(words, frames)
    assert edge_set(widened) == {(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (1, 3)}
    assert edge_set(TemporalAlignment().edges(frames, words)) == {(0, 0), (1, 0), (2, 1)}


def test_temporal_alignment_skips_unknown_spans():
    words = nodes(2, [[float("nan"), float("nan")], [0.0, 1.0]])
    frames = nodes(2, [[0.0, 0.5], [0.5, 1.0]])
    assert edge_set(TemporalAlignment().edges(words, frames)) == {(1, 0), (1, 1)}


def test_temporal_alignment_rejects_negative_window():
    with pytest.raises(ValueError, match=r"TemporalAlignment 'window' \(seconds\) must be a number >= 0"):
        TemporalAlignment(window=-0.1)


@pytest.mark.parametrize("strategy_class", [StridedBipartite, RandomBipartite])
@pytest.mark.parametrize("num_src,num_dst,budget", [(50, 32, 8), (5, 7, 8), (100, 3, 1), (1, 4, 3)])
def test_budget_strategies_give_each_destination_distinct_sources(strategy_class, num_src, num_dst, budget):
    strategy = strategy_class(budget=budget)
    edges = strategy.edges(nodes(num_src), nodes(num_dst))
    per_node = min(budget, num_src)
    assert edges.size(1) == num_dst * per_node == strategy.max_edges(num_src, num_dst)
    for sources in sources_per_destination(edges, num_dst):
        assert len(sources) == len(set(sources)) == per_node
        assert all(0 <= s < num_src for s in sources)


def test_strided_spreads_sources_over_the_sequence():
    edges = StridedBipartite(budget=4).edges(nodes(40), nodes(10))
    sources = sources_per_destination(edges, 10)
    assert sources[0] == [0, 10, 20, 30]
    assert sources[5] == [0, 10, 20, 30]  # start 20, strides of 10, wrapped
    assert sources[1] == [4, 14, 24, 34]


def test_random_bipartite_is_seeded():
    first = RandomBipartite(budget=5, seed=3).edges(nodes(30), nodes(20))
    assert torch.equal(first, RandomBipartite(budget=5, seed=3).edges(nodes(30), nodes(20)))
    assert not torch.equal(first, RandomBipartite(budget=5, seed=4).edges(nodes(30), nodes(20)))


def test_random_bipartite_draws_in_chunks_for_long_inputs():
    num_src = _RANDOM_CHUNK_ELEMENTS // 2 + 1  # two destination rows no longer fit in one chunk
    edges = RandomBipartite(budget=3).edges(nodes(num_src), nodes(3))
    for sources in sources_per_destination(edges, 3):
        assert len(set(sources)) == 3


def test_callable_strategy_output_is_checked():
    def diagonal(src, dst):
        n = min(src.num_nodes, dst.num_nodes)
        return torch.arange(n).repeat(2, 1)

    assert edge_set(CallableStrategy(diagonal).edges(nodes(3), nodes(2))) == {(0, 0), (1, 1)}
    with pytest.raises(ValueError, match=r"destinations in \[0, 2\)"):
        CallableStrategy(lambda src, dst: torch.tensor([[0], [5]])).edges(nodes(3), nodes(2))
    with pytest.raises(TypeError, match=r"must be a torch.long tensor of shape \[2, num_edges\]"):
        CallableStrategy(lambda src, dst: torch.zeros(2, 1)).edges(nodes(3), nodes(2))
    with pytest.raises(TypeError, match="expects a callable"):
        CallableStrategy(3)


def test_resolve_strategy():
    assert isinstance(resolve_strategy("full"), FullBipartite)
    assert isinstance(resolve_strategy("strided"), StridedBipartite)
    strategy = TemporalAlignment(0.1)
    assert resolve_strategy(strategy) is strategy
    assert isinstance(resolve_strategy(lambda src, dst: None), CallableStrategy)
    with pytest.raises(ValueError, match=r"Unknown cross-modal strategy 'dense'; registered: \['full', 'function', "):
        resolve_strategy("dense")
    with pytest.raises(TypeError, match="Cannot use 3 as a cross-modal strategy"):
        resolve_strategy(3)


def test_cross_edges_and_virtual_nodes_validate_arguments():
    assert isinstance(CrossEdges("text", "image").strategy, FullBipartite)
    with pytest.raises(ValueError, match="joins two different node types, got 'text' twice"):
        CrossEdges("text", "text")
    with pytest.raises(ValueError, match="VirtualNodes 'count' must be an integer >= 1"):
        VirtualNodes(count=0)


def test_reprs():
    assert repr(RandomBipartite(4, seed=2)) == "RandomBipartite(budget=4, seed=2)"
    assert repr(StridedBipartite(3)) == "StridedBipartite(budget=3)"
    assert repr(TemporalAlignment(0.5)) == "TemporalAlignment(window=0.5)"
