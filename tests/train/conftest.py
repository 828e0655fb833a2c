"""Tiny shared fixtures of the training-engine tests: a text + image task whose class is the colour word in
the sentence (the image is noise), featurised once, and a factory of small seeded models."""
import os

import pytest
import torch

from graphfuse import GraphBuilder, ImageModality, TextModality, Tokenizer
from graphfuse.models import create_model
from graphfuse.train import featurize_dataset

COLOURS = ("red", "blue", "green")
FILLER = "the a shape here there is on with small big".split()


def colour_samples(size: int, seed: int) -> tuple[list[dict], list[int]]:
    """Raw samples and their labels (random, so that dataset order matters): the colour word, placed among
    filler words, and an 8x8 noise image."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(len(COLOURS), (size,), generator=generator).tolist()
    samples = []
    for label in labels:
        words = [FILLER[int(i)] for i in torch.randint(len(FILLER), (2,), generator=generator)]
        words.insert(int(torch.randint(3, (), generator=generator)), COLOURS[label])
        samples.append({"text": " ".join(words), "image": torch.rand(8, 8, generator=generator)})
    return samples, labels


@pytest.fixture(scope="session")
def colour_builder():
    return GraphBuilder({"text": TextModality(Tokenizer(list(COLOURS) + FILLER)),
                         "image": ImageModality(patch_size=4, channels=1)}, cross="full")


@pytest.fixture(scope="session")
def colour_data(colour_builder):
    """``{"train": 48 (nodes, label) pairs, "val": 24}``, featurised; do not modify them in place."""
    data = {}
    for name, size, seed in (("train", 48, 0), ("val", 24, 1)):
        samples, labels = colour_samples(size, seed)
        data[name] = featurize_dataset(colour_builder, list(zip(samples, labels, strict=True)), progress=False)
    return data


@pytest.fixture(scope="session")
def small(colour_data):
    """24 training and 12 validation pairs: 3 steps per epoch at batch size 8."""
    return colour_data["train"][:24], colour_data["val"][:12]


@pytest.fixture(scope="session")
def make_model(colour_builder, colour_data):
    """``make_model(seed=0, task="classification", materialize=False, **kwargs)``: a small graph-gat over the
    colour builder, initialised after ``torch.manual_seed(seed)``, with dropout so that training draws random
    numbers. Its encoders have lazy input sizes, which the trainer materialises, unless ``materialize=True``
    runs one batch through it first (for tests that read the weights before training)."""

    def make(seed: int = 0, task: str = "classification", materialize: bool = False, **kwargs):
        torch.manual_seed(seed)
        options = dict(num_classes=len(COLOURS), hidden_channels=16, heads=2, num_layers=1, dropout=0.2)
        if task == "regression":
            options.pop("num_classes")
        model = create_model("graph-gat", builder=colour_builder, task=task, **{**options, **kwargs})
        if materialize:
            with torch.no_grad():
                model.eval()(colour_builder.collate([nodes for nodes, _ in colour_data["val"][:2]]))
            model.train()
        return model

    return make


@pytest.fixture
def restore_determinism():
    """Puts torch's global determinism settings (and CUBLAS_WORKSPACE_CONFIG) back after the test."""
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    if cublas is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas
