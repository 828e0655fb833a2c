import numpy as np
import pytest
import torch

from graphfuse.datasets.interactions import interaction_builder, interaction_dataset, modality_names


def _bits(sample, name, dim=8):
    """Each slot's bit of one modality, read back from noiseless features (rows sorted by time)."""
    directions = np.random.default_rng(12345).standard_normal((3, dim))
    m = int(name[1:])
    order = torch.argsort(sample[name]["time"][:, 0])
    projection = sample[name]["x"][order].numpy() @ directions[m]
    return (projection > 0).astype(int)


@pytest.mark.parametrize("modalities", [2, 3])
@pytest.mark.parametrize("interaction", ["redundancy", "uniqueness", "synergy"])
def test_labels_follow_the_interaction(interaction, modalities):
    data = interaction_dataset(200, interaction, modalities, noise=0.0, seed=5)
    names = modality_names(modalities)
    for sample, label in data:
        bits = np.stack([_bits(sample, name) for name in names])
        if interaction == "redundancy":
            assert (bits == bits[0]).all()
            value = bits[0]
        elif interaction == "uniqueness":
            value = bits[0]
        else:
            value = np.bitwise_xor.reduce(bits, axis=0)
        assert label == int(value.sum() > 2)


@pytest.mark.parametrize("modalities", [2, 3])
def test_synergy_is_invisible_to_each_modality_alone(modalities):
    data = interaction_dataset(4000, "synergy", modalities, noise=0.0, seed=1)
    labels = np.array([label for _, label in data])
    for name in modality_names(modalities):
        ones = np.array([_bits(sample, name).sum() for sample, _ in data])
        assert abs(np.corrcoef(ones, labels)[0, 1]) < 0.05
    first = np.array([_bits(sample, "m0").sum() for sample, _ in interaction_dataset(4000, "uniqueness", 2, noise=0.0)])
    assert np.corrcoef(first, [label for _, label in interaction_dataset(4000, "uniqueness", 2, noise=0.0)])[0, 1] > 0.5


def test_rows_are_in_random_order_and_data_is_seeded():
    (sample, _), = interaction_dataset(1, seed=0)
    starts = sample["m0"]["time"][:, 0]
    assert not torch.equal(torch.sort(starts).values, starts) or not torch.equal(
        torch.sort(sample["m1"]["time"][:, 0]).values, sample["m1"]["time"][:, 0])
    again, = interaction_dataset(1, seed=0)
    assert torch.equal(again[0]["m0"]["x"], sample["m0"]["x"])
    other, = interaction_dataset(1, seed=1)
    assert not torch.equal(other[0]["m0"]["x"], sample["m0"]["x"])


@pytest.mark.parametrize("modalities", [2, 3])
def test_builder_joins_the_nodes_of_one_slot(modalities):
    (sample, _), = interaction_dataset(1, "synergy", modalities, seed=2)
    graph = interaction_builder(modalities).build(sample)
    names = modality_names(modalities)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            edge_index = graph[a, "to", b].edge_index
            assert edge_index.size(1) == 5  # one partner per slot
            slot_a = sample[a]["time"][edge_index[0], 0].floor()
            slot_b = sample[b]["time"][edge_index[1], 0].floor()
            assert torch.equal(slot_a, slot_b)


def test_bad_arguments():
    with pytest.raises(ValueError, match="interaction must be one of"):
        interaction_dataset(1, "complementarity")
    with pytest.raises(ValueError, match="two- and three-modality"):
        interaction_dataset(1, modalities=4)
    with pytest.raises(ValueError, match="positive odd number"):
        interaction_dataset(1, slots=4)
