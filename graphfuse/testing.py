"""Test helpers: marks for optional dependencies and devices (they need pytest), graph comparison, and
a model of a user's own."""
from __future__ import annotations

import itertools
from collections.abc import Callable, Collection

import torch
from torch_geometric.data import HeteroData

from graphfuse.data.compare import graph_difference
from graphfuse.typing import dgl_importable


def tri_modal_builder():
    """Text, image and audio with complete bipartite ("full") cross edges between every pair: the
    builder of the fusion-layer and model tests."""
    from graphfuse.data import (
        AudioModality,
        CrossEdges,
        FullBipartite,
        GraphBuilder,
        ImageModality,
        TextModality,
        Tokenizer,
    )
    from graphfuse.datasets import WORDS

    modalities = {
        "text": TextModality(Tokenizer.from_corpus([WORDS])),
        "image": ImageModality(patch_size=4, channels=3),
        "audio": AudioModality(),
    }
    return GraphBuilder(modalities, cross=[CrossEdges(a, b, FullBipartite())
                                           for a, b in itertools.combinations(modalities, 2)])


def requires_dgl(test: Callable) -> Callable:
    """Marks a test as needing DGL: ``-m dgl`` selects it; it is skipped where DGL is not importable."""
    import pytest

    skip = pytest.mark.skipif(not dgl_importable(), reason="dgl is not importable (install graphfuse[dgl])")
    return pytest.mark.dgl(skip(test))


def requires_cuda(test: Callable) -> Callable:
    """Marks a test as needing a CUDA device: ``-m gpu`` selects it; it is skipped on CPU-only machines."""
    import pytest

    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
    return pytest.mark.gpu(skip(test))


def assert_same_graph(actual: HeteroData, expected: HeteroData, ordered: bool = True,
                      exclude: Collection[str] = (), rtol: float = 0.0, atol: float = 0.0) -> None:
    """Raises an ``AssertionError`` naming the first difference unless both graphs have the same node
    counts and tensors, floating ones within ``rtol`` and ``atol`` (see
    :func:`graphfuse.data.compare.graph_difference`)."""
    difference = graph_difference(actual, expected, ordered, exclude, rtol, atol)
    if difference is not None:
        raise AssertionError(difference)


class UserModel(torch.nn.Module):
    """A model of a user's own around ``inner`` (one from :func:`graphfuse.models.create_model`): its
    forward and head, but no ``task_name``, so that the Trainer and the Pipeline cannot know its task."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.head = inner, inner.head

    def forward(self, batch):
        return self.inner(batch)
