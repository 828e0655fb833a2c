"""Node sets a caller puts in a sample are checked once, at featurisation or collation on the CPU, before
any can join nodes of two samples or carry NaN into a model; the builder's own pass straight through."""
import pytest
import torch

from graphfuse.data import GraphBuilder, ImageModality, NodeSet
from graphfuse.train import featurize_dataset


@pytest.fixture
def builder():
    return GraphBuilder({"image": ImageModality(patch_size=2, channels=1)})


def given(edge_index, x=None) -> NodeSet:
    return NodeSet(x=torch.rand(3, 4) if x is None else x, edge_index=torch.tensor(edge_index),
                   pos=torch.zeros(3, 2, dtype=torch.long))


def test_an_edge_out_of_range_is_refused_at_collation(builder):
    other = {"image": torch.rand(4, 4)}
    with pytest.raises(ValueError, match="intra-modal edges of 'image'"):
        builder.collate([{"image": given([[0, 1], [1, 5]])}, other])  # node 5 would be the next sample's
    with pytest.raises(ValueError, match="intra-modal edges of 'image'"):
        builder.collate([{"image": given([[0, 1], [1, 5]])}])  # also when every value is a node set


def test_nan_features_are_refused(builder):
    with pytest.raises(ValueError, match="NaN"):
        builder.collate([{"image": given([[0], [1]], x=torch.tensor([[float("nan")] * 4] * 3))}])


def test_valid_node_sets_are_checked_once_and_the_builders_own_pass_through(builder, monkeypatch):
    nodes = given([[0, 1], [1, 2]])
    assert not nodes.validated
    batch = builder.collate([{"image": nodes}, {"image": torch.rand(4, 4)}])
    assert nodes.validated and batch["image"].num_nodes == 3 + 4
    featurized = featurize_dataset(builder, [{"image": torch.rand(4, 4)}], progress=False)
    calls = []
    monkeypatch.setattr(NodeSet, "validate", lambda self, modality: calls.append(modality) or self)
    builder.collate(featurized * 3 + [{"image": nodes}])
    assert calls == []  # validated node sets are not checked again, every epoch
