import itertools

import pytest
import torch

from graphfuse.data import chain_edges, full_bipartite_edges, grid_edges
from graphfuse.data.edges import copies


def edge_set(edge_index):
    return set(map(tuple, edge_index.t().tolist()))


@pytest.mark.parametrize("num_nodes,window", [(1, 1), (2, 1), (7, 1), (7, 2), (7, 6), (7, 10)])
def test_chain_edges_join_nodes_at_most_window_apart(num_nodes, window):
    edges = chain_edges(num_nodes, window)
    expected = {(i, j) for i in range(num_nodes) for j in range(num_nodes) if 1 <= abs(i - j) <= window}
    assert edges.dtype == torch.long
    assert edges.size(1) == len(expected)
    assert edge_set(edges) == expected


def test_chain_edges_self_loops_and_empty():
    assert edge_set(chain_edges(3, 1, self_loops=True)) == {(0, 1), (1, 0), (1, 2), (2, 1), (0, 0), (1, 1), (2, 2)}
    assert chain_edges(0).shape == (2, 0)


@pytest.mark.parametrize("neighbourhood,expected", [(4, 168), (8, 312)])
def test_grid_7x7_edge_counts(neighbourhood, expected):
    assert grid_edges(7, 7, neighbourhood).size(1) == expected


@pytest.mark.parametrize("neighbourhood", [4, 8])
def test_grid_edges_match_brute_force(neighbourhood):
    rows, cols = 3, 5
    cells = list(itertools.product(range(rows), range(cols)))
    expected = set()
    for (r1, c1), (r2, c2) in itertools.permutations(cells, 2):
        distance = abs(r1 - r2) + abs(c1 - c2)
        if distance == 1 or (neighbourhood == 8 and abs(r1 - r2) == 1 and abs(c1 - c2) == 1):
            expected.add((r1 * cols + c1, r2 * cols + c2))
    edges = grid_edges(rows, cols, neighbourhood)
    assert edges.size(1) == len(expected)
    assert edge_set(edges) == expected
    with_loops = grid_edges(rows, cols, neighbourhood, self_loops=True)
    assert edge_set(with_loops) == expected | {(i, i) for i in range(rows * cols)}


def test_full_bipartite_edges_are_all_pairs():
    assert edge_set(full_bipartite_edges(3, 4)) == set(itertools.product(range(3), range(4)))
    assert full_bipartite_edges(0, 4).shape == (2, 0)


def test_patterns_are_fresh_copies_of_the_cached_template():
    first = chain_edges(5, 2)
    first.add_(100)
    assert int(chain_edges(5, 2).max()) == 4
    grid = grid_edges(4, 4)
    grid.zero_()
    assert grid_edges(4, 4).size(1) == 48 and int(grid_edges(4, 4).max()) == 15


def test_copies_are_independent_of_each_other_and_of_the_cache():
    """Batched featurisation hands these to different samples: one sample's edges written into must not
    change another's, nor the cached pattern."""
    first, second, third = copies(chain_edges(4), 3)
    first.add_(100)
    assert torch.equal(second, chain_edges(4)) and torch.equal(third, chain_edges(4))
    grids = copies(grid_edges(3, 3), 3)
    grids[1].zero_()
    assert torch.equal(grids[0], grid_edges(3, 3)) and torch.equal(grids[2], grid_edges(3, 3))
    assert int(grid_edges(3, 3).max()) == 8 and all(grid.is_contiguous() for grid in grids)


@pytest.mark.parametrize("call,match", [
    (lambda: chain_edges(-1), "chain_edges 'num_nodes' must be an integer >= 0"),
    (lambda: chain_edges(4, 0), "chain_edges 'window' must be an integer >= 1"),
    (lambda: chain_edges(4.0), "chain_edges 'num_nodes'"),
    (lambda: grid_edges(3, 3, 6), r"grid_edges 'neighbourhood' must be one of \(4, 8\)"),
    (lambda: full_bipartite_edges(2, -3), "full_bipartite_edges 'num_dst'"),
])
def test_bad_arguments_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_long_patterns_are_built_each_time_not_kept():
    """Recordings of many lengths would fill the pattern caches with megabyte-sized chains."""
    from graphfuse.data.edges import CACHED_MAX_NODES, _chain, _grid

    _chain.cache_clear()
    _grid.cache_clear()  # caches only: clearing them changes no result
    chain_edges(CACHED_MAX_NODES)
    grid_edges(64, 64)
    for length in range(60_000, 60_003):
        edges = chain_edges(length, 2)
        assert edges.size(1) == 2 * (length - 1) + 2 * (length - 2)
        assert torch.equal(edges, _chain.__wrapped__(length, 2, False))
    assert grid_edges(100, 100).size(1) == 4 * 100 * 99
    assert _chain.cache_info().currsize == _grid.cache_info().currsize == 1  # the small ones alone
