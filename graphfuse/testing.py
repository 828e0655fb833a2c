"""Test helpers: marks for optional dependencies and devices (they need pytest), and graph comparison."""
from __future__ import annotations

import itertools
from collections.abc import Callable, Collection

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from graphfuse.typing import dgl_importable


def tri_modal_builder():
    """Text, image and audio with complete bipartite ("full") cross edges between every pair: the
    builder of the fusion-layer and model tests."""
    from graphfuse.datasets import WORDS
    from graphfuse.graph import CrossEdges, FullBipartite, GraphBuilder
    from graphfuse.modalities import AudioModality, ImageModality, TextModality, Tokenizer

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


def graph_tensors(data: HeteroData, exclude: Collection[str] = ()) -> dict[tuple, Tensor]:
    """Every tensor of ``data`` by ``(node or edge type, attribute)``, in storage order."""
    return {(key, name): value for key in data.node_types + data.edge_types for name, value in data[key].items()
            if isinstance(value, Tensor) and name not in exclude}


def assert_same_graph(actual: HeteroData, expected: HeteroData, ordered: bool = True,
                      exclude: Collection[str] = ()) -> None:
    """Raises an ``AssertionError`` unless both graphs have the same node counts and the same
    tensors (values, dtypes and shapes; NaN equals NaN) under the same node and edge types.

    Args:
        ordered (bool, optional): types and attributes must also come in the same order.
        exclude (Collection[str], optional): attribute names left out of the comparison.
    """
    actual_tensors, expected_tensors = graph_tensors(actual, exclude), graph_tensors(expected, exclude)
    if ordered:
        assert actual.metadata() == expected.metadata(), f"{actual.metadata()} != {expected.metadata()}"
        assert list(actual_tensors) == list(expected_tensors), f"{list(actual_tensors)} != {list(expected_tensors)}"
    else:
        assert set(actual.edge_types) == set(expected.edge_types)
        assert actual_tensors.keys() == expected_tensors.keys(), f"{actual_tensors.keys()} != {expected_tensors.keys()}"
    for key, value in expected_tensors.items():
        torch.testing.assert_close(actual_tensors[key], value, rtol=0, atol=0, equal_nan=True,
                                   msg=lambda message, key=key: f"{key} differs: {message}")
    actual_counts = {node_type: actual[node_type].num_nodes for node_type in actual.node_types}
    assert actual_counts == {node_type: expected[node_type].num_nodes for node_type in expected.node_types}
