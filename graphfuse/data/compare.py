"""Comparing heterogeneous graphs tensor by tensor (batches checked against ``Batch.from_data_list``)."""
from __future__ import annotations

from collections.abc import Collection

import torch
from torch import Tensor
from torch_geometric.data import HeteroData


def graph_tensors(data: HeteroData, exclude: Collection[str] = ()) -> dict[tuple, Tensor]:
    """Every tensor of ``data`` by ``(node or edge type, attribute)``, in storage order."""
    return {(key, name): value for key in data.node_types + data.edge_types for name, value in data[key].items()
            if isinstance(value, Tensor) and name not in exclude}


def graph_difference(actual: HeteroData, expected: HeteroData, ordered: bool = True,
                     exclude: Collection[str] = (), rtol: float = 0.0, atol: float = 0.0) -> str | None:
    """The first difference between two graphs, or ``None`` when they have the same node counts and
    the same tensors (values, dtypes and shapes; NaN equals NaN) under the same node and edge types.

    Args:
        ordered (bool, optional): types and attributes must also come in the same order.
            (default: :obj:`True`)
        exclude (Collection[str], optional): attribute names left out of the comparison.
        rtol (float, optional): relative tolerance for floating tensors (others: exact).
            (default: :obj:`0.0`)
        atol (float, optional): absolute tolerance for floating tensors. (default: :obj:`0.0`)
    """
    actual_tensors, expected_tensors = graph_tensors(actual, exclude), graph_tensors(expected, exclude)
    if ordered:
        if actual.metadata() != expected.metadata():
            return f"{actual.metadata()} != {expected.metadata()}"
        if list(actual_tensors) != list(expected_tensors):
            return f"{list(actual_tensors)} != {list(expected_tensors)}"
    elif set(actual.edge_types) != set(expected.edge_types) or actual_tensors.keys() != expected_tensors.keys():
        return f"{sorted(map(str, actual_tensors))} != {sorted(map(str, expected_tensors))}"
    for key, value in expected_tensors.items():
        try:
            floating = value.is_floating_point()
            torch.testing.assert_close(actual_tensors[key], value, rtol=rtol if floating else 0,
                                       atol=atol if floating else 0, equal_nan=True)
        except AssertionError as error:
            return f"{key} differs: {error}"
    actual_counts = {node_type: actual[node_type].num_nodes for node_type in actual.node_types}
    expected_counts = {node_type: expected[node_type].num_nodes for node_type in expected.node_types}
    if actual_counts != expected_counts:
        return f"node counts {actual_counts} != {expected_counts}"
    return None
