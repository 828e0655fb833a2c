import re

import numpy as np
import pytest
import torch

from graphfuse.data import FeatureModality


def features(num_nodes=5, dim=4, seed=0):
    return torch.randn(num_nodes, dim, generator=torch.Generator().manual_seed(seed))


def edge_set(edge_index):
    return set(map(tuple, edge_index.t().tolist()))


def test_matrix_to_nodes():
    x = features()
    modality = FeatureModality(dim=4)
    nodes = modality(x)
    assert torch.equal(nodes.x, x)
    assert nodes.edge_index.shape == (2, 0) and nodes.edge_index.dtype == torch.long
    assert nodes.pos is None and nodes.time is None
    assert modality.relation is None and modality.name == "features"


@pytest.mark.parametrize("convert", [np.asarray, lambda x: x.double(), lambda x: x.tolist()])
def test_other_inputs_become_float32(convert):
    x = features()
    nodes = FeatureModality(dim=4)(convert(x))
    assert nodes.x.dtype == torch.float32
    assert torch.allclose(nodes.x, x)


def test_mapping_with_pos_and_time():
    x = features(3, 2)
    time = [[0.0, 0.5], [0.5, 1.0], [float("nan"), float("nan")]]  # NaN: an unknown span
    nodes = FeatureModality(dim=2, positions=True, timed=True)({"x": x, "pos": [4, 5, 6], "time": time})
    assert torch.equal(nodes.pos, torch.tensor([4, 5, 6]))
    assert nodes.pos.dtype == torch.long
    assert nodes.time.dtype == torch.float32
    assert torch.equal(nodes.time[:2], torch.tensor(time[:2])) and bool(nodes.time[2].isnan().all())


def test_pos_shape_and_dtype():
    modality = FeatureModality(dim=2, positions=True, pos_shape=(2,), pos_dtype=torch.float32)
    pos = torch.rand(3, 2)
    nodes = modality({"x": features(3, 2), "pos": pos})
    assert nodes.pos.dtype == torch.float32 and torch.equal(nodes.pos, pos)
    with pytest.raises(ValueError, match=r"Modality 'features' received 'pos' of shape \(3,\); expected \(3, 2\)"):
        modality({"x": features(3, 2), "pos": torch.arange(3)})


@pytest.mark.parametrize("pos, count, example", [
    (torch.tensor([[0.1, 0.9], [0.5, 0.5], [0.9, 0.1]]), 6, "0.1"),
    (np.array([[2.0, 1.5], [0.0, 3.0], [1.0, 1.0]]), 1, "1.5"),
    (torch.tensor([[2.0, 1.0], [float("nan"), 3.0], [1.0, 1.0]]), 1, "nan"),
    (torch.tensor([[2.0, 1.0], [0.0, float("inf")], [1.0, 1.0]], dtype=torch.float16), 1, "inf"),
])
def test_fractional_positions_are_refused_for_an_integer_pos_dtype(pos, count, example):
    modality = FeatureModality(dim=2, positions=True, pos_shape=(2,))
    with pytest.raises(ValueError, match=rf"Modality 'features' received 'pos' with {count} value\(s\) that are not "
                                         rf"whole numbers \(e\.g\. {example}\), but its positions are torch\.int64, "
                                         r"which would truncate them; pass whole-number positions, or create the "
                                         r"modality with pos_dtype=torch\.float32"):
        modality({"x": features(3, 2), "pos": pos})


def test_whole_floating_positions_are_kept_for_an_integer_pos_dtype():
    nodes = FeatureModality(dim=2, positions=True, pos_shape=(2,))({"x": features(3, 2),
                                                                    "pos": [[2.0, 1.0], [0.0, -3.0], [1.0, 1.0]]})
    assert nodes.pos.dtype == torch.long and nodes.pos.tolist() == [[2, 1], [0, -3], [1, 1]]


@pytest.mark.parametrize("x", [features(5, 3), features(5, 4)[0], torch.randn(2, 5, 4), torch.empty(0, 4)])
def test_wrong_shape(x):
    with pytest.raises(ValueError, match=re.escape(f"Modality 'features' received features of shape {tuple(x.shape)}; "
                                                   "expected [num_nodes >= 1, 4] as set by FeatureModality(dim=4)")):
        FeatureModality(dim=4)(x)


@pytest.mark.parametrize("dtype", [torch.long, torch.int32, torch.bool, torch.uint8])
def test_non_float_features(dtype):
    with pytest.raises(TypeError, match=f"Modality 'features' received features of dtype {dtype}; expected a "
                                        "floating dtype"):
        FeatureModality(dim=4)(torch.zeros(5, 4, dtype=dtype))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_features(bad):
    x = features()
    x[2, 1] = bad
    with pytest.raises(ValueError, match="Modality 'features' received features with 1 NaN/Inf value"):
        FeatureModality(dim=4)(x)


def test_features_that_are_not_an_array():
    with pytest.raises(TypeError, match=r"Modality 'features' received object; expected features as a tensor"):
        FeatureModality(dim=4)(object())


@pytest.mark.parametrize("kwargs, raw, match", [
    ({"positions": True}, {"x": features()}, r"received a mapping with keys \['x'\]; this "
                                             r"FeatureModality\(positions=True, timed=False\) expects \['pos', 'x'\]"),
    ({}, {"x": features(), "time": torch.zeros(5, 2)},
     r"received a mapping with keys \['time', 'x'\].* expects \['x'\]"),
    ({"timed": True}, features(), r"received a bare Tensor but is set up with positions=False, timed=True; pass a "
                                  "mapping with 'x'"),
])
def test_input_not_matching_the_setup(kwargs, raw, match):
    with pytest.raises(ValueError, match=f"Modality 'features' {match}"):
        FeatureModality(dim=4, **kwargs)(raw)


@pytest.mark.parametrize("time, match", [
    (torch.zeros(5, 3), r"produced 'time' of shape \(5, 3\) and dtype torch.float32; expected floating \(start, end\)"),
    (torch.zeros(4, 2), r"produced 'time' with shape \(4, 2\) for 5 nodes; expected \[5, ...\]"),
    (torch.tensor([[0.0, 1.0]] * 4 + [[2.0, 1.0]]), "has a time span whose end is before its start"),
    (torch.tensor([[0.0, 1.0]] * 4 + [[0.0, float("inf")]]), "received time spans with 1 NaN/Inf value"),
])
def test_bad_time(time, match):
    with pytest.raises(ValueError, match=f"Modality 'features' {match}"):
        FeatureModality(dim=4, timed=True)({"x": features(), "time": time})


@pytest.mark.parametrize("window", [1, 2, 4])
def test_chain_rule(window):
    modality = FeatureModality(dim=4, edges="chain", window=window)
    nodes = modality(features(6))
    assert modality.relation == "intra"
    assert nodes.num_edges == len(edge_set(nodes.edge_index))
    assert edge_set(nodes.edge_index) == {(i, j) for i in range(6) for j in range(6) if 1 <= abs(i - j) <= window}


def test_callable_rule():
    seen = []

    def star(nodes):
        seen.append((nodes.x.clone(), nodes.num_edges))
        leaves = torch.arange(1, nodes.num_nodes)
        return torch.stack([leaves, torch.zeros_like(leaves)])

    modality = FeatureModality(dim=4, edges=star, relation="star")
    x = features()
    nodes = modality(x)
    assert modality.relation == "star"
    assert edge_set(nodes.edge_index) == {(1, 0), (2, 0), (3, 0), (4, 0)}
    assert len(seen) == 1 and torch.equal(seen[0][0], x) and seen[0][1] == 0  # called once, before any edges


@pytest.mark.parametrize("output, error, match", [
    (torch.tensor([[0, 5], [1, 0]]), ValueError, r"index nodes out of range: sources must lie in \[0, 5\)"),
    (torch.tensor([[0, 1], [-1, 0]]), ValueError, "index nodes out of range"),
    (torch.tensor([[0.0, 1.0], [1.0, 0.0]]), TypeError, r"must be a torch.long tensor of shape \[2, num_edges\]"),
    (torch.tensor([0, 1]), TypeError, r"must be a torch.long tensor .* of shape \(2,\)"),
    ([[0, 1], [1, 0]], TypeError, "must be a torch.long tensor .*; received list"),
])
def test_callable_rule_output_is_validated(output, error, match):
    modality = FeatureModality(dim=4, edges=lambda nodes: output)
    with pytest.raises(error, match=f"The edge rule's output of 'features' {match}"):
        modality(features())


@pytest.mark.parametrize("kwargs, match", [
    ({"dim": 0}, "FeatureModality 'dim' must be an integer >= 1"),
    ({"dim": 4, "window": 0}, "FeatureModality 'window' must be an integer >= 1"),
    ({"dim": 4, "edges": "grid"}, "FeatureModality 'edges' must be None, 'chain' or a callable, got 'grid'"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FeatureModality(**kwargs)


@pytest.mark.parametrize("kwargs, pos_shape, timed", [
    ({}, None, False),
    ({"positions": True, "timed": True}, (0,), True),
    ({"positions": True, "pos_shape": (3,), "pos_dtype": torch.float32}, (0, 3), False),
])
def test_empty_node_set(kwargs, pos_shape, timed):
    modality = FeatureModality(dim=7, **kwargs)
    empty = modality.empty()
    assert empty.x.shape == (0, 7) and empty.x.dtype == torch.float32
    assert empty.edge_index.shape == (2, 0)
    assert (None if empty.pos is None else tuple(empty.pos.shape)) == pos_shape
    if pos_shape is not None:
        assert empty.pos.dtype == modality.pos_dtype
    assert (empty.time is not None) == timed
    if timed:
        assert empty.time.shape == (0, 2)
    empty.validate("features")


def test_repr():
    assert repr(FeatureModality(dim=3, edges="chain")) == ("FeatureModality(dim=3, positions=False, timed=False, "
                                                           "edges='chain')")
