"""Tiny shared fixtures of the model tests: a tri-modal builder, raw samples that miss modalities and edits
of one modality of a raw sample."""

import pytest
import torch

from graphfuse.data import PairGraphs
from graphfuse.datasets import WORDS, synthetic_samples
from graphfuse.testing import tri_modal_builder


@pytest.fixture(scope="session")
def builder():
    return tri_modal_builder()


@pytest.fixture
def samples():
    """Four raw samples (fresh in each test): sample 1 has no audio, sample 2 no image."""
    samples = synthetic_samples(4, tokens=3, grid=2, frames=3)
    samples[1].pop("audio")
    samples[2].pop("image")
    return samples


@pytest.fixture
def complete_samples():
    """Four raw samples with all three modalities (fresh in each test)."""
    return synthetic_samples(4, tokens=3, grid=2, frames=3, seed=1)


@pytest.fixture(scope="session")
def make_batch(builder):
    """``make_batch(samples)``: featurised, collated samples that carry their ``node_sets`` and
    ``pair_graphs``, as the Trainer's training batches do."""
    def make(samples):
        node_sets = [builder.featurize(s) for s in samples]
        batch = builder.collate(node_sets)
        batch.node_sets, batch.pair_graphs = node_sets, PairGraphs(builder, node_sets)
        return batch
    return make


def _other_image(sample):
    return {**sample, "image": 255 - sample["image"]}


def _other_text(sample):
    return {**sample, "text": " ".join(WORDS[(WORDS.index(w) + 1) % len(WORDS)] for w in sample["text"].split())}


def _other_audio(sample):
    waveform, rate = sample["audio"]
    return {**sample, "audio": (2 * torch.flip(waveform, [0]), rate)}


@pytest.fixture(scope="session")
def edit():
    """``edit(samples, modality)``: copies of raw ``samples`` with that modality's content changed (same sizes)."""
    edits = {"image": _other_image, "text": _other_text, "audio": _other_audio}

    def apply(samples, modality):
        return [edits[modality](s) if modality in s else dict(s) for s in samples]
    return apply
