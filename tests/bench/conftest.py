"""Shared fixtures of the benchmark tests: a learnable tiny classification task and a tiny retrieval task,
registered for one test only."""

import pytest
import torch
from tiny import TINY, TINY_RETRIEVAL

from graphfuse import GraphBuilder, ImageModality, TextModality, Tokenizer
from graphfuse.bench import accuracy
from graphfuse.datasets import WORDS, synthetic_samples
from graphfuse.datasets.tasks import TASKS, TaskData, register_task
from graphfuse.testing import tri_modal_builder


def labelled(size: int, seed: int) -> list:
    """Two classes, each shown by a word of the sentence and by the image's brightness."""
    samples = synthetic_samples(size, tokens=3, grid=2, frames=4, seed=seed)
    labels = torch.randint(2, (size,), generator=torch.Generator().manual_seed(seed)).tolist()
    for sample, label in zip(samples, labels, strict=True):
        sample["text"] = ("blue " if label else "red ") + sample["text"]
        sample["image"] = sample["image"] // 4 + (160 if label else 0)
    return list(zip(samples, labels, strict=True))


def pairs(size: int, seed: int) -> list:
    return [{"text": s["text"], "image": s["image"]}
            for s in synthetic_samples(size, tokens=3, grid=2, frames=4, seed=seed)]


@pytest.fixture
def tiny_tasks(monkeypatch):
    """A learnable tri-modal classification task ``_tiny`` and a text -> image retrieval task
    ``_tiny_retrieval``, registered for the test only, with tiny training configs."""

    def classification(quick: bool = False, seed: int = 0) -> TaskData:
        return TaskData("_tiny", "classification", tri_modal_builder(), labelled(64, seed), labelled(16, seed + 1),
                        labelled(32, seed + 2), num_classes=2, description="red/blue word and brightness")

    def retrieval(quick: bool = False, seed: int = 0) -> TaskData:
        builder = GraphBuilder({"text": TextModality(Tokenizer.from_corpus([WORDS])),
                                "image": ImageModality(patch_size=4, channels=3)}, cross="full")
        return TaskData("_tiny_retrieval", "retrieval", builder, pairs(24, seed), pairs(8, seed + 1),
                        pairs(12, seed + 2), description="random captions and images")

    names = {"_tiny": classification, "_tiny_retrieval": retrieval}
    for name, loader in names.items():
        register_task(name)(loader)
    monkeypatch.setitem(accuracy.CONFIGS, "_tiny", (TINY, TINY))
    monkeypatch.setitem(accuracy.CONFIGS, "_tiny_retrieval", (TINY_RETRIEVAL, TINY_RETRIEVAL))
    yield names
    for name in names:
        TASKS.unregister(name)
