"""Tiny pipelines, built once per module: a tri-modal classifier trained for one epoch and a text -> image +
audio retrieval model, each saved to a folder."""
import pytest

from graphfuse import Pipeline
from graphfuse.datasets import synthetic_samples
from graphfuse.models import create_model
from graphfuse.testing import tri_modal_builder
from graphfuse.train import Trainer

CLASS_NAMES = ["red", "green", "blue"]


def raw_samples(count: int, seed: int = 0) -> list[dict]:
    return synthetic_samples(count, tokens=3, grid=2, frames=3, seed=seed)


@pytest.fixture(scope="session")
def classifier():
    builder = tri_modal_builder()
    model = create_model("graph-gat", builder=builder, num_classes=3, hidden_channels=8, num_layers=2, heads=2, seed=0)
    samples = raw_samples(8)
    Trainer(model, builder, epochs=1, batch_size=4, progress=False).fit([(s, i % 3) for i, s in enumerate(samples)])
    return Pipeline(builder, model, class_names=CLASS_NAMES)


@pytest.fixture(scope="session")
def retriever():
    builder = tri_modal_builder()
    model = create_model("graph-gat", builder=builder, task="retrieval", query=["text"], gallery=["image", "audio"],
                         hidden_channels=8, num_layers=1, heads=2, rerank_negatives=1, seed=0)
    return Pipeline(builder, model)


@pytest.fixture(scope="session")
def saved_classifier(classifier, tmp_path_factory):
    return classifier.save_pretrained(tmp_path_factory.mktemp("pipelines") / "classifier")


@pytest.fixture(scope="session")
def saved_retriever(retriever, tmp_path_factory):
    return retriever.save_pretrained(tmp_path_factory.mktemp("pipelines") / "retriever")
