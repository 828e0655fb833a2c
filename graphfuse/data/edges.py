"""Edge patterns that depend only on shapes: sequence chains, patch grids, complete bipartite.

Each pattern of a small shape is built once (``functools.lru_cache``) and handed out as a fresh
copy, so nobody can corrupt the cached template by writing into what they received. Patterns of
more than :data:`CACHED_MAX_NODES` nodes are built anew each time (in linear time): recordings of
many different lengths would otherwise keep hundreds of megabyte-sized chains alive.
"""
from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from graphfuse.checks import check_choice, check_int

#: The most nodes of a pattern that is cached (512 chains of it at window 1 hold 64 MiB at most).
CACHED_MAX_NODES = 4096


@lru_cache(maxsize=512)
def _chain(num_nodes: int, window: int, self_loops: bool) -> Tensor:
    index = torch.arange(num_nodes)
    sources, targets = [], []
    for distance in range(1, min(window, num_nodes - 1) + 1):
        sources += [index[:-distance], index[distance:]]
        targets += [index[distance:], index[:-distance]]
    if self_loops:
        sources.append(index)
        targets.append(index)
    if not sources:
        return torch.empty(2, 0, dtype=torch.long)
    return torch.stack([torch.cat(sources), torch.cat(targets)])


def chain_edges(num_nodes: int, window: int = 1, self_loops: bool = False) -> Tensor:
    r"""Edges of a sequence: node :math:`i` and :math:`j` are joined, both ways, when
    :math:`1 \le |i - j| \le` ``window``.

    Args:
        num_nodes (int): sequence length.
        window (int, optional): how far apart joined nodes may be. (default: :obj:`1`)
        self_loops (bool, optional): add :math:`i \to i`. (default: :obj:`False`)

    Returns:
        ``torch.long`` tensor :math:`[2, E]`; without self loops
        :math:`E = 2 \sum_{d=1}^{k} (n - d)` for :math:`k = \min(\text{window}, n - 1)`.
    """
    check_int(num_nodes, "chain_edges 'num_nodes'", 0)
    check_int(window, "chain_edges 'window'")
    if num_nodes > CACHED_MAX_NODES:
        return _chain.__wrapped__(num_nodes, window, bool(self_loops))
    return _chain(num_nodes, window, bool(self_loops)).clone()


def copies(edge_index: Tensor, count: int) -> tuple[Tensor, ...]:
    """``count`` copies of ``edge_index`` made in one operation, each a contiguous view of its own part
    of one tensor (what batched featurisation hands to the node sets of one shape)."""
    return edge_index.expand(count, *edge_index.shape).clone().unbind()


_NEIGHBOUR_OFFSETS = {
    4: ((0, 1), (0, -1), (1, 0), (-1, 0)),
    8: ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, -1), (1, -1), (-1, 1)),
}


@lru_cache(maxsize=256)
def _grid(rows: int, cols: int, neighbourhood: int, self_loops: bool) -> Tensor:
    index = torch.arange(rows * cols).view(rows, cols)
    sources, targets = [], []
    for d_row, d_col in _NEIGHBOUR_OFFSETS[neighbourhood]:
        source = index[max(0, -d_row):rows - max(0, d_row), max(0, -d_col):cols - max(0, d_col)]
        target = index[max(0, d_row):rows - max(0, -d_row), max(0, d_col):cols - max(0, -d_col)]
        sources.append(source.reshape(-1))
        targets.append(target.reshape(-1))
    if self_loops:
        sources.append(index.reshape(-1))
        targets.append(index.reshape(-1))
    return torch.stack([torch.cat(sources), torch.cat(targets)])


def grid_edges(rows: int, cols: int, neighbourhood: int = 4, self_loops: bool = False) -> Tensor:
    r"""Edges of a ``rows`` x ``cols`` grid of patches numbered row-major, both ways.

    Args:
        rows (int): grid height.
        cols (int): grid width.
        neighbourhood (int, optional): ``4`` (edge-sharing) or ``8`` (also corner-sharing)
            neighbours. (default: :obj:`4`)
        self_loops (bool, optional): add :math:`i \to i`. (default: :obj:`False`)

    Returns:
        ``torch.long`` tensor :math:`[2, E]`; a 7 x 7 grid has 168 edges with 4 neighbours
        and 312 with 8.
    """
    check_int(rows, "grid_edges 'rows'", 0)
    check_int(cols, "grid_edges 'cols'", 0)
    check_choice(neighbourhood, tuple(_NEIGHBOUR_OFFSETS), "grid_edges 'neighbourhood'")
    if rows * cols > CACHED_MAX_NODES:
        return _grid.__wrapped__(rows, cols, neighbourhood, bool(self_loops))
    return _grid(rows, cols, neighbourhood, bool(self_loops)).clone()


def full_bipartite_edges(num_src: int, num_dst: int) -> Tensor:
    r"""Every source node joined to every destination node: :math:`[2, N_s N_d]`, source-major."""
    check_int(num_src, "full_bipartite_edges 'num_src'", 0)
    check_int(num_dst, "full_bipartite_edges 'num_dst'", 0)
    return torch.stack([
        torch.arange(num_src).repeat_interleave(num_dst),
        torch.arange(num_dst).repeat(num_src),
    ])
