"""Tiny shared fixtures of the explanation tests: the tri-modal builder, raw samples (one lacking
its audio) and small seeded models of every kind."""
import pytest
import torch

from graphfuse.datasets import synthetic_samples
from graphfuse.models import create_model
from graphfuse.testing import tri_modal_builder

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="session")
def builder():
    return tri_modal_builder()


@pytest.fixture
def samples():
    """Three raw samples; sample 1 has no audio."""
    samples = synthetic_samples(3, tokens=3, grid=2, frames=3)
    samples[1].pop("audio")
    return samples


@pytest.fixture(scope="session")
def make_model(builder):
    """``make_model(name, **kwargs)``: a small seeded model of the builder's data, in evaluation mode
    with its lazy sizes set."""
    def make(name="graph-gat", **kwargs):
        kwargs = {"hidden_channels": 8, **kwargs}
        if kwargs.get("task", "classification") in ("classification", "multilabel"):
            kwargs.setdefault("num_classes", 3)
        model = create_model(name, builder=builder, seed=0, **kwargs)
        with torch.no_grad():
            model.eval()(builder.collate(synthetic_samples(2, tokens=3, grid=2, frames=3, seed=5)))
        return model
    return make
