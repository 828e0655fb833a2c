"""Resuming from a damaged checkpoint, or from one whose training state does not fit, gives a CheckpointError
naming the file before anything trains, never a raw KeyError, TypeError or RuntimeError."""
import pytest
import torch

from graphfuse.checkpoint import CheckpointError, load_checkpoint
from graphfuse.train import Trainer

FAST = dict(batch_size=8, lr=1e-2, progress=False)


@pytest.fixture(scope="module")
def last(make_model, colour_builder, small, tmp_path_factory):
    """The contents of the last.pt of a one-epoch run."""
    folder = tmp_path_factory.mktemp("run")
    Trainer(make_model(), colour_builder, epochs=1, checkpoint_dir=folder, **FAST).fit(small[0][:8])
    return load_checkpoint(folder / "last.pt")


def resume_from(path, make_model, colour_builder, small, **model_options):
    Trainer(make_model(**model_options), colour_builder, epochs=2, **FAST).fit(small[0][:8], resume=path)


@pytest.mark.parametrize("edit, match", [
    (lambda c: c.update(trainer=[1]), "'trainer' is a list, not a dict"),
    (lambda c: c["trainer"].pop("history"), "the trainer's 'history' is None"),
    (lambda c: c["trainer"].update(epoch="3"), "the trainer's 'epoch' is '3'"),
    (lambda c: c["trainer"].update(history=[1.5]), "'history' is not a list of dicts"),
    (lambda c: c.update(optimizer=[]), r"\['optimizer'\] are not dicts"),
    (lambda c: c["optimizer"].update(param_groups=[]), "optimiser, schedule or random state cannot be restored"),
    (lambda c: c["rng"].update(torch=torch.zeros(3)), "optimiser, schedule or random state cannot be restored"),
], ids=["trainer a list", "no history", "epoch a string", "history of numbers", "optimizer a list",
        "no parameter groups", "a short random state"])
def test_damaged_training_state(last, make_model, colour_builder, small, tmp_path, edit, match):
    checkpoint = {key: (dict(value) if isinstance(value, dict) else value) for key, value in last.items()}
    checkpoint["trainer"] = dict(checkpoint["trainer"])
    edit(checkpoint)
    path = tmp_path / "last.pt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match=match) as raised:
        resume_from(path, make_model, colour_builder, small)
    assert str(path) in str(raised.value)


def test_a_checkpoint_of_another_model(last, make_model, colour_builder, small, tmp_path):
    path = tmp_path / "last.pt"
    torch.save(last, path)
    with pytest.raises(CheckpointError, match="does not fit the model being trained") as raised:
        resume_from(path, make_model, colour_builder, small, hidden_channels=8)  # was a raw RuntimeError
    assert str(path) in str(raised.value)


def test_a_cut_checkpoint(last, make_model, colour_builder, small, tmp_path):
    path = tmp_path / "last.pt"
    torch.save(last, path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated") as raised:
        resume_from(path, make_model, colour_builder, small)
    assert str(path) in str(raised.value) and "weights_only" not in str(raised.value)
