"""What the batched featurisation of the built-in modalities shares: grouping inputs that can be
featurised together, and the positions and chain edges of many sequences at once."""
from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

import torch
from torch import Tensor

from graphfuse.data.edges import chain_edges, copies
from graphfuse.data.modalities.base import Modality

Item = TypeVar("Item")
Result = TypeVar("Result")


def featurizes_as(modality: Modality, owner: type[Modality]) -> bool:
    """Whether ``modality`` featurises as the class ``owner`` does, i.e. does not override
    ``owner.featurize``: only then may ``owner``'s batched :meth:`Modality.featurize_many` stand in
    for it (a subclass that, say, resamples audio in its own ``featurize`` is featurised one
    input at a time)."""
    return type(modality).featurize is owner.featurize


def in_groups(items: Sequence[Item], key: Callable[[Item], Hashable],
              featurize: Callable[[list[Item]], Sequence[Result]]) -> list[Result]:
    """``featurize`` called once per group of ``items`` with equal ``key`` (clips of one sample rate,
    images of one size), each group in the items' order; the results in the order of ``items``."""
    groups: dict[Hashable, list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(key(item), []).append(index)
    results: dict[int, Result] = {}
    for indices in groups.values():
        results.update(zip(indices, featurize([items[index] for index in indices]), strict=True))
    return [results[index] for index in range(len(items))]


def sequence_positions(lengths: Sequence[int]) -> Tensor:
    """``[0, 1, ..., n_0 - 1, 0, 1, ..., n_1 - 1, ...]``: each node's index in its own sequence, for
    sequences of ``lengths`` nodes back to back (the ``pos`` of a batch of token or frame
    sequences, in a few tensor operations whatever the number of sequences)."""
    if len(lengths) > 1 and lengths.count(lengths[0]) == len(lengths):  # one length (fixed-size inputs): one op
        return torch.arange(lengths[0]).repeat(len(lengths))
    positions = torch.arange(sum(lengths))
    if len(lengths) > 1:
        starts = torch.tensor([0, *itertools.accumulate(lengths[:-1])])
        positions -= starts.repeat_interleave(torch.tensor(lengths))
    return positions


def chain_edges_many(lengths: Sequence[int], window: int = 1, self_loops: bool = False) -> list[Tensor]:
    """:func:`~graphfuse.data.chain_edges` of each of ``lengths``, the copies for one length made in one
    operation (:func:`~graphfuse.data.edges.copies`: writing into one leaves the others as they were)."""
    return in_groups(list(lengths), key=int, featurize=lambda group: copies(chain_edges(group[0], window, self_loops),
                                                                          len(group)))
