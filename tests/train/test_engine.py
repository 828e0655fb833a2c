import math
import os
import re
import tempfile

import pytest
import torch

from graphfuse.deprecation import GraphfuseDeprecationWarning
from graphfuse.train import (
    ClassificationTask,
    NonFiniteLossError,
    Trainer,
    classification_metrics,
    create_task,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from graphfuse.train.engine import set_deterministic
from graphfuse.train.modality_dropout import ModalityDropout

FAST = dict(batch_size=8, lr=1e-2, progress=False)


def state_of(model) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def same_state(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


def losses(history) -> list[float]:
    return [record["train_loss"] for record in history]


def batch_of(builder, data):
    batch = builder.collate([nodes for nodes, _ in data])
    batch.y = torch.tensor([label for _, label in data])
    return batch


@torch.no_grad()
def eval_outputs(model, batch) -> torch.Tensor:
    model.eval()
    return model(batch)


pytestmark = pytest.mark.usefixtures("one_thread")


# Learning -----------------------------------------------------------------------------------------
def test_fit_learns_the_colour_word_and_records_one_entry_per_epoch(make_model, colour_builder, colour_data):
    trainer = Trainer(make_model(), colour_builder, epochs=3, **{**FAST, "lr": 3e-2})
    history = trainer.fit(colour_data["train"], colour_data["val"])

    assert history is trainer.history
    assert [record["epoch"] for record in history] == [0, 1, 2]
    for record in history:
        assert {"train_loss", "lr", "val_loss", "val_accuracy", "val_macro_f1", "seconds"} <= record.keys()
        assert all(math.isfinite(record[key]) for key in ("train_loss", "val_loss", "seconds"))
        assert record["seconds"] > 0
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_accuracy"] >= 0.6  # chance is 1/3
    # Nothing trains after the last evaluation, so evaluating again gives the last epoch's numbers.
    metrics = trainer.evaluate(colour_data["val"])
    assert metrics["accuracy"] == history[-1]["val_accuracy"]
    assert metrics["loss"] == pytest.approx(history[-1]["val_loss"], rel=1e-6)


# Seeding --------------------------------------------------------------------------------------------
def test_same_seed_reproduces_the_run_and_another_seed_does_not(make_model, colour_builder, small):
    train, val = small
    def run(seed, scramble):
        model = make_model(seed=0, dropout=0.3)  # same initial weights: only the trainer's seed differs
        torch.manual_seed(scramble)  # the trainer seeds every generator itself, whatever their state
        history = Trainer(model, colour_builder, epochs=2, seed=seed, **FAST).fit(train)
        return state_of(model), losses(history)

    first, again, other = run(seed=3, scramble=0), run(seed=3, scramble=1), run(seed=4, scramble=0)
    assert same_state(first[0], again[0])
    assert first[1] == again[1]
    assert not same_state(first[0], other[0])
    assert first[1] != other[1]


class RecordingOrder(ClassificationTask):
    """Classification that records the dataset indices of every training batch."""

    def __init__(self, model) -> None:
        super().__init__(model.head)
        self.orders = []

    def loss(self, output, batch):
        if torch.is_grad_enabled():
            self.orders.append(batch.sample_index.tolist())
        return super().loss(output, batch)


def test_every_epoch_visits_every_sample_once_in_a_new_order(make_model, colour_builder, small):
    train, val = small
    model = make_model()
    task = RecordingOrder(model)
    Trainer(model, colour_builder, task=task, epochs=2, **FAST).fit(train)
    steps = len(train) // FAST["batch_size"]
    epochs = [sum(task.orders[i * steps:(i + 1) * steps], []) for i in range(2)]
    assert len(task.orders) == 2 * steps
    assert all(sorted(order) == list(range(len(train))) for order in epochs)
    assert epochs[0] != epochs[1]
    assert list(range(len(train))) not in epochs


# Checkpoints and resuming ---------------------------------------------------------------------------
class Interrupted(Exception):
    pass


class CrashingTrainer(Trainer):
    """Dies at the start of epoch ``crash_at``, as a killed job would, after the earlier epochs' checkpoints."""

    crash_at = 2

    def _train_epoch(self, wrapped, loader, optimizer, scheduler, epoch, state):
        if epoch == self.crash_at:
            raise Interrupted
        return super()._train_epoch(wrapped, loader, optimizer, scheduler, epoch, state)


def test_resume_after_a_crash_matches_an_uninterrupted_run(make_model, colour_builder, small, tmp_path):
    train, val = small
    config = dict(epochs=4, schedule="cosine", warmup=0.2, seed=1, **FAST)  # dropout 0.2, shuffled batches
    reference = make_model(seed=0)
    expected = Trainer(reference, colour_builder, checkpoint_dir=tmp_path / "reference", **config).fit(train, val)

    with pytest.raises(Interrupted):
        CrashingTrainer(make_model(seed=0), colour_builder, checkpoint_dir=tmp_path / "run", **config).fit(train, val)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["trainer"]["epoch"] == 1

    resumed = make_model(seed=5)  # other initial weights: everything must come from the checkpoint
    history = Trainer(resumed, colour_builder, checkpoint_dir=tmp_path / "run", **config).fit(train, val, resume="last")
    assert same_state(state_of(resumed), state_of(reference))
    assert [record["epoch"] for record in history] == [0, 1, 2, 3]
    assert losses(history) == losses(expected)
    assert [record["lr"] for record in history] == [record["lr"] for record in expected]


def test_resume_with_more_epochs_continues_a_finished_run(make_model, colour_builder, small, tmp_path):
    train, val = small
    config = dict(schedule="constant", warmup=0.0, seed=2, **FAST)  # a schedule that does not depend on epochs
    reference = make_model(seed=0)
    Trainer(reference, colour_builder, epochs=4, **config).fit(train)

    Trainer(make_model(seed=0), colour_builder, epochs=2, checkpoint_dir=tmp_path, **config).fit(train)
    resumed = make_model(seed=7)
    trainer = Trainer(resumed, colour_builder, epochs=4, checkpoint_dir=tmp_path, **config)
    history = trainer.fit(train, resume=tmp_path / "last.pt")
    assert len(history) == 4
    assert same_state(state_of(resumed), state_of(reference))


def test_fit_refuses_a_folder_with_checkpoints_unless_told(make_model, colour_builder, small, tmp_path):
    train, val = small
    train = train[:8]
    Trainer(make_model(), colour_builder, epochs=1, checkpoint_dir=tmp_path, **FAST).fit(train)
    written = (tmp_path / "last.pt").read_bytes()

    with pytest.raises(FileExistsError, match=re.escape(str(tmp_path))):
        Trainer(make_model(), colour_builder, epochs=1, checkpoint_dir=tmp_path, **FAST).fit(train)
    assert (tmp_path / "last.pt").read_bytes() == written  # refused before anything was written

    model = make_model(seed=1)
    Trainer(model, colour_builder, epochs=1, checkpoint_dir=tmp_path, overwrite=True, **FAST).fit(train)
    assert same_state(load_checkpoint(tmp_path / "last.pt")["model"], state_of(model))



def counting_forwards(model) -> list[int]:
    """A list whose length counts the model's forward calls."""
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    return calls


def test_fit_refuses_a_checkpoint_dir_that_is_a_file_before_training(make_model, colour_builder, small, tmp_path):
    path = tmp_path / "runs"
    path.write_text("not a folder")
    model = make_model()
    calls = counting_forwards(model)
    with pytest.raises(NotADirectoryError, match=re.escape(f"Trainer 'checkpoint_dir' '{path}' is a file, not a "
                                                           f"folder")):
        Trainer(model, colour_builder, epochs=1, checkpoint_dir=path, **FAST).fit(small[0][:8])
    assert calls == [] and path.read_text() == "not a folder"


def test_fit_refuses_an_unwritable_checkpoint_dir_before_training(make_model, colour_builder, small, tmp_path,
                                                                  monkeypatch):
    model = make_model()
    calls = counting_forwards(model)
    if os.getuid() == 0:  # chmod does not stop root: simulate the refused write
        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    else:
        os.chmod(tmp_path, 0o500)
    try:
        with pytest.raises(PermissionError, match=re.escape(f"Trainer 'checkpoint_dir' '{tmp_path}' is not a folder "
                                                            f"this process can write in")):
            Trainer(model, colour_builder, epochs=1, checkpoint_dir=tmp_path, **FAST).fit(small[0][:8])
    finally:
        os.chmod(tmp_path, 0o700)
    assert calls == [] and list(tmp_path.iterdir()) == []


def test_fit_creates_a_missing_checkpoint_dir(make_model, colour_builder, small, tmp_path):
    Trainer(make_model(), colour_builder, epochs=1, checkpoint_dir=tmp_path / "a" / "b", **FAST).fit(small[0][:8])
    assert (tmp_path / "a" / "b" / "last.pt").is_file()

class ScriptedAccuracy(ClassificationTask):
    """Classification whose validation accuracy follows ``script`` (one value per evaluation), so that the
    best epoch is known; keeps the weights as they were at each evaluation."""

    def __init__(self, model, script) -> None:
        super().__init__(model.head)
        self.model, self.script, self.weights = model, list(script), []

    def metrics(self, outputs):
        self.weights.append(state_of(self.model))
        return {**super().metrics(outputs), "accuracy": self.script[len(self.weights) - 1]}


def test_checkpoints_hold_the_last_and_the_best_epoch(make_model, small, colour_builder, tmp_path):
    train, val = small
    model = make_model()
    task = ScriptedAccuracy(model, [0.5, 0.9, 0.7])
    history = Trainer(model, colour_builder, task=task, epochs=3, checkpoint_dir=tmp_path, **FAST).fit(train, val)
    assert [record["val_accuracy"] for record in history] == [0.5, 0.9, 0.7]

    last = load_checkpoint(tmp_path / "last.pt")
    assert last["trainer"]["epoch"] == 2
    assert {"optimizer", "scheduler", "rng"} <= last.keys()
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["trainer"]["epoch"] == 1
    assert best["trainer"]["best"] == 0.9
    assert len(best["trainer"]["history"]) == 2
    assert same_state(best["model"], task.weights[1])
    assert not same_state(best["model"], state_of(model))

    batch = batch_of(colour_builder, val[:8])
    restored = make_model(seed=9)
    load_weights(restored, tmp_path / "last.pt")
    assert torch.equal(eval_outputs(restored, batch), eval_outputs(model, batch))
    load_weights(restored, tmp_path / "best.pt")
    assert same_state(state_of(restored), task.weights[1])


def test_restore_best_puts_back_the_best_epoch_without_any_file(make_model, colour_builder, small, tmp_path,
                                                                monkeypatch):
    train, val = small
    model = make_model()
    task = ScriptedAccuracy(model, [0.5, 0.9, 0.7])
    monkeypatch.chdir(tmp_path)
    Trainer(model, colour_builder, task=task, epochs=3, restore_best=True, **FAST).fit(train, val)
    assert same_state(state_of(model), task.weights[1])
    assert not same_state(task.weights[2], task.weights[1])
    assert list(tmp_path.iterdir()) == []

    kept = make_model()
    kept_task = ScriptedAccuracy(kept, [0.5, 0.9, 0.7])
    Trainer(kept, colour_builder, task=kept_task, epochs=3, **FAST).fit(train, val)
    assert same_state(state_of(kept), kept_task.weights[2])  # the default keeps the last epoch


def test_restore_best_after_a_resume_reads_the_best_epoch_from_its_folder(make_model, colour_builder, small, tmp_path):
    train, val = small
    first = make_model()
    first_task = ScriptedAccuracy(first, [0.5, 0.9])
    Trainer(first, colour_builder, task=first_task, epochs=2, checkpoint_dir=tmp_path, **FAST).fit(train, val)

    resumed = make_model(seed=3)
    resumed_task = ScriptedAccuracy(resumed, [0.6, 0.4])  # no better than the 0.9 before the resume
    Trainer(resumed, colour_builder, task=resumed_task, epochs=4, checkpoint_dir=tmp_path, restore_best=True,
            **FAST).fit(train, val, resume="last")
    assert same_state(state_of(resumed), first_task.weights[1])

    with pytest.raises(ValueError, match=r"restore_best=True\) resuming from a checkpoint path needs checkpoint_dir"):
        Trainer(make_model(), colour_builder, epochs=4, restore_best=True, **FAST).fit(
            train, val, resume=tmp_path / "last.pt")


# Non-finite losses ----------------------------------------------------------------------------------
class NaNAfter(ClassificationTask):
    """Classification whose training loss turns NaN (keeping its graph, so a step would spread the NaN to
    every weight) from training call ``bad_call`` on; records the weights at that moment."""

    def __init__(self, model, bad_call: int) -> None:
        super().__init__(model.head)
        self.model, self.bad_call, self.calls, self.weights_at_nan = model, bad_call, 0, None

    def loss(self, output, batch):
        loss = super().loss(output, batch)
        if not torch.is_grad_enabled():  # evaluation
            return loss
        self.calls += 1
        if self.calls >= self.bad_call:
            if self.weights_at_nan is None:
                self.weights_at_nan = state_of(self.model)
            return loss * float("nan")
        return loss


def test_nan_loss_stops_without_updating_the_weights(make_model, colour_builder, small, tmp_path):
    train, val = small
    model = make_model()
    steps_per_epoch = len(train) // FAST["batch_size"]
    task = NaNAfter(model, bad_call=steps_per_epoch + 3)  # in the second epoch (epoch 1)
    trainer = Trainer(model, colour_builder, task=task, epochs=3, checkpoint_dir=tmp_path, **FAST)
    with pytest.raises(NonFiniteLossError) as error:
        trainer.fit(train, val)

    message = str(error.value)
    assert "epoch 1" in message
    assert str(tmp_path / "last.pt") in message
    assert "after epoch 0" in message
    assert same_state(state_of(model), task.weights_at_nan)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())

    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint["trainer"]["epoch"] == 0
    assert all(bool(torch.isfinite(value).all()) for value in checkpoint["model"].values())
    assert len(trainer.history) == 1


def test_nan_loss_without_checkpoint_dir_says_so(make_model, colour_builder, small):
    train, val = small
    model = make_model(materialize=True)
    task = NaNAfter(model, bad_call=1)
    before = state_of(model)
    with pytest.raises(NonFiniteLossError, match="epoch 0.*no checkpoint was written"):
        Trainer(model, colour_builder, task=task, epochs=1, **FAST).fit(train)
    assert same_state(state_of(model), before)


# Early stopping ---------------------------------------------------------------------------------------
def test_early_stopping_counts_epochs_since_the_last_improvement(make_model, colour_builder, small):
    train, val = small
    model = make_model()
    task = ScriptedAccuracy(model, [0.5, 0.4, 0.6, 0.3, 0.2, 0.1, 0.0])
    history = Trainer(model, colour_builder, task=task, epochs=10, patience=2, **FAST).fit(train[:8], val[:4])
    assert [record["val_accuracy"] for record in history] == [0.5, 0.4, 0.6, 0.3, 0.2]


@pytest.mark.parametrize("patience", [1, 2])
def test_early_stopping_when_the_monitor_cannot_improve(make_model, colour_builder, small, patience):
    train, val = small
    model = make_model(materialize=True, unimodal_ensemble=True)  # no votes to gate: nothing may change
    before = state_of(model)
    history = Trainer(model, colour_builder, epochs=10, patience=patience, **{**FAST, "lr": 0.0}).fit(train[:16], val)
    assert len(history) == patience + 1
    assert same_state(state_of(model), before)  # lr 0 (and so no weight decay) really froze it


def test_resuming_a_run_that_stopped_early_trains_no_further(make_model, colour_builder, small, tmp_path):
    train, val = small
    config = dict(epochs=10, patience=1, checkpoint_dir=tmp_path, **{**FAST, "lr": 0.0})
    assert len(Trainer(make_model(), colour_builder, **config).fit(train[:8], val[:4])) == 2
    written = (tmp_path / "last.pt").read_bytes()
    history = Trainer(make_model(), colour_builder, **config).fit(train[:8], val[:4], resume="last")
    assert [record["epoch"] for record in history] == [0, 1]
    assert (tmp_path / "last.pt").read_bytes() == written


@pytest.mark.parametrize("monitor, with_val, message", [
    ("acuracy", True, "'acuracy' is not among"),
    ("macro_f1", False, "validation metrics need val_data"),
])
def test_a_monitor_the_run_does_not_record_is_refused(make_model, colour_builder, small, monitor, with_val, message):
    train, val = small
    trainer = Trainer(make_model(), colour_builder, epochs=2, patience=1, monitor=monitor, **FAST)
    with pytest.raises(ValueError, match=message):
        trainer.fit(train[:8], val[:4] if with_val else None)


# Unimodal votes ---------------------------------------------------------------------------------------
def test_validation_gates_the_votes_of_heads_that_learn_nothing(make_model, colour_builder, colour_data):
    """The colour word is in the text; the image is noise: its head must stop voting, the text's keeps on."""
    model = make_model()
    trainer = Trainer(model, colour_builder, epochs=3, **{**FAST, "lr": 3e-2})
    assert model.unimodal.gated and trainer.task.informative_modalities() == ("text", "image")
    history = trainer.fit(colour_data["train"], colour_data["val"])
    assert list(model.unimodal.node_types) == ["text", "image"]
    assert model.unimodal.votes.tolist() == [True, False]
    assert trainer.task.informative_modalities() == ("text",)
    # what validation recorded is the model with its new votes: the test-time model
    metrics = trainer.evaluate(colour_data["val"])
    assert metrics["accuracy"] == history[-1]["val_accuracy"]
    assert metrics["loss"] == pytest.approx(history[-1]["val_loss"], rel=1e-6)


def test_without_validation_data_or_gating_every_head_votes(make_model, colour_builder, colour_data):
    model = make_model()
    Trainer(model, colour_builder, epochs=2, **FAST).fit(colour_data["train"])
    assert model.unimodal.votes.all()
    model = make_model(unimodal_ensemble=True)
    trainer = Trainer(model, colour_builder, epochs=2, **FAST)
    trainer.fit(colour_data["train"], colour_data["val"])
    assert model.unimodal.votes.all() and trainer.task.informative_modalities() is None


def test_modality_dropout_keeps_a_modality_whose_head_votes(make_model, colour_builder, colour_data, monkeypatch):
    """Once the image's head stops voting, no training sample is left with the image alone."""
    kept, asked = [], []
    dropout = ModalityDropout.__call__

    def spy(self, sample, generator=None, keep_one_of=None):
        out = dropout(self, sample, generator, keep_one_of)
        asked.append(keep_one_of)
        kept.append(frozenset(key for key in ("text", "image") if key in out))
        return out

    monkeypatch.setattr(ModalityDropout, "__call__", spy)
    model = make_model()
    train = colour_data["train"]
    Trainer(model, colour_builder, epochs=3, modality_dropout=0.4, **{**FAST, "lr": 3e-2}).fit(
        train, colour_data["val"])
    assert model.unimodal.votes.tolist() == [True, False]
    first, last = slice(-3 * len(train), -2 * len(train)), slice(-len(train), None)  # the epochs' samples
    assert set(asked[first]) == {("text", "image")}  # every head votes until the first validation
    assert frozenset({"image"}) in kept[first]
    assert set(asked[last]) == {("text",)} and frozenset({"image"}) not in kept[last]
    assert frozenset({"text"}) in kept[last]  # the image is still dropped


# Schedules, precision, determinism ---------------------------------------------------------------------
@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_decaying_schedules_end_at_zero(make_model, colour_builder, small, schedule):
    train, val = small
    history = Trainer(make_model(), colour_builder, epochs=3, schedule=schedule, warmup=0.25, **FAST).fit(train)
    lrs = [record["lr"] for record in history]
    assert lrs[-1] == pytest.approx(0.0, abs=1e-9)
    assert FAST["lr"] >= lrs[0] > lrs[1] > lrs[2]


def test_constant_schedule_keeps_the_learning_rate(make_model, colour_builder, small):
    train, val = small
    history = Trainer(make_model(), colour_builder, epochs=2, schedule="constant", warmup=0.25, **FAST).fit(train)
    assert [record["lr"] for record in history] == [FAST["lr"]] * 2


def test_bf16_trains_with_finite_losses_and_float32_outputs(make_model, colour_builder, small):
    train, val = small
    trainer = Trainer(make_model(), colour_builder, epochs=1, precision="bf16", **FAST)
    history = trainer.fit(train, val)
    assert math.isfinite(history[0]["train_loss"]) and math.isfinite(history[0]["val_loss"])
    outputs = trainer.predict(val)
    assert outputs["logits"].dtype == torch.float32
    assert bool(torch.isfinite(outputs["logits"]).all())


def test_deterministic_mode_trains_like_the_default(make_model, colour_builder, small, restore_determinism):
    train, val = small
    default = make_model()
    Trainer(default, colour_builder, epochs=1, **FAST).fit(train)
    deterministic = make_model()
    Trainer(deterministic, colour_builder, epochs=1, deterministic=True, **FAST).fit(train)
    assert torch.are_deterministic_algorithms_enabled()
    assert same_state(state_of(deterministic), state_of(default))
    set_deterministic(False)
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.slow
def test_compiled_model_trains(make_model, colour_builder, small, tmp_path):
    train, val = small
    model = make_model(dropout=0.0)
    history = Trainer(model, colour_builder, epochs=1, compile=True, checkpoint_dir=tmp_path, **FAST).fit(train[:16])
    assert math.isfinite(history[0]["train_loss"])
    saved = load_checkpoint(tmp_path / "last.pt")["model"]  # the bare model's keys, loadable without compile
    assert same_state(saved, state_of(model))


# Evaluation and prediction ------------------------------------------------------------------------------
def test_evaluate_is_the_metrics_of_predict_in_dataset_order(make_model, small, colour_builder):
    train, val = small
    model = make_model()
    trainer = Trainer(model, colour_builder, epochs=1, **{**FAST, "batch_size": 5})  # the last batch is smaller
    trainer.fit(train)
    outputs = trainer.predict(val)

    labels = torch.tensor([label for _, label in val])
    assert torch.equal(outputs["target"], labels)
    assert outputs["logits"].shape == (len(val), 3)
    one = batch_of(colour_builder, val[7:8])  # sample 7 alone gives row 7
    torch.testing.assert_close(outputs["logits"][7:8], eval_outputs(model, one))
    expected_loss = torch.nn.functional.cross_entropy(outputs["logits"], labels)
    assert float(outputs["loss"]) == pytest.approx(float(expected_loss), rel=1e-5)

    metrics = trainer.evaluate(val)
    assert metrics == {"loss": pytest.approx(float(outputs["loss"])),
                       **classification_metrics(outputs["logits"], outputs["target"])}
    for training in (True, False):  # predict puts back the mode it found
        model.train(training)
        trainer.predict(val[:3])
        assert model.training is training


def test_predict_on_unlabelled_samples(make_model, colour_builder, small):
    train, val = small
    trainer = Trainer(make_model(), colour_builder, **FAST)
    labelled = trainer.predict(val)
    unlabelled = [nodes for nodes, _ in val]
    outputs = trainer.predict(unlabelled)
    assert set(outputs) == {"logits"}
    torch.testing.assert_close(outputs["logits"], labelled["logits"])
    with pytest.raises(ValueError, match="need targets"):
        trainer.evaluate(unlabelled)
    with pytest.raises(ValueError, match="Some batches have targets and some do not"):
        trainer.predict([*val[:8], *unlabelled[8:]])  # one labelled batch, one unlabelled


def test_regression_trains_and_reports_its_metrics(make_model, colour_builder, small):
    train, val = small
    def as_regression(data):
        return [(nodes, float(label)) for nodes, label in data]

    trainer = Trainer(make_model(task="regression"), colour_builder, epochs=1, **FAST)
    history = trainer.fit(as_regression(train), as_regression(val))
    assert {"val_loss", "val_mse", "val_mae", "val_r2"} <= history[0].keys()
    metrics = trainer.evaluate(as_regression(val))
    assert set(metrics) == {"loss", "mse", "mae", "r2"}
    assert metrics["loss"] == pytest.approx(metrics["mse"], rel=1e-5)
    assert trainer.predict(as_regression(val[:4]))["prediction"].shape == (4, 1)


def test_multilabel_trains_and_reports_its_metrics(make_model, colour_builder, small):
    train, val = small
    def as_multilabel(data):  # the colour, and whether it is not red
        return [(nodes, [int(label == k) for k in range(3)] + [int(label != 0)]) for nodes, label in data]

    trainer = Trainer(make_model(task="multilabel", num_classes=4), colour_builder, epochs=1, **FAST)
    history = trainer.fit(as_multilabel(train), as_multilabel(val))
    assert {"val_loss", "val_subset_accuracy", "val_micro_f1", "val_macro_f1", "val_mAP"} <= history[0].keys()
    metrics = trainer.evaluate(as_multilabel(val))
    assert set(metrics) == {"loss", "subset_accuracy", "micro_f1", "macro_f1", "mAP"}
    assert all(0.0 <= metrics[key] <= 1.0 for key in metrics if key != "loss")


# Errors ---------------------------------------------------------------------------------------------------
def test_model_without_a_task_is_refused(colour_builder):
    with pytest.raises(TypeError, match=r"Trainer needs the task Linear is trained for: pass task= a registered name "
                                        r"\(\['classification', 'multilabel', 'regression', 'retrieval'\]\)"):
        Trainer(torch.nn.Linear(2, 2), builder=colour_builder)
    with pytest.raises(ValueError, match="Unknown training task 'ranking'; registered: .*register_task"):
        Trainer(torch.nn.Linear(2, 2), colour_builder, task="ranking")


def test_model_without_a_builder_is_refused(make_model, colour_builder):
    model = make_model()
    del model.builder
    with pytest.raises(TypeError, match=r"Trainer needs the GraphBuilder that turns samples into graphs: "
                                        r"Trainer\(model, builder\)"):
        Trainer(model)
    with pytest.raises(TypeError, match="Trainer 'builder' must be the GraphBuilder of the data, got dict"):
        Trainer(model, {"text": None})


def test_the_trainer_owns_the_task_by_name_or_object(make_model, colour_builder, small):
    model = make_model()
    del model.builder  # models are plain modules: the builder and the task come to the Trainer
    assert not hasattr(model, "task")
    by_default = Trainer(model, colour_builder, epochs=1, **FAST)
    assert isinstance(by_default.task, ClassificationTask) and by_default.task.head is model.head
    assert by_default.task.unimodal is model.unimodal and by_default.task.unimodal_weight == model.unimodal_weight
    mine = ClassificationTask(model.head)
    assert Trainer(model, colour_builder, task=mine).task is mine
    assert isinstance(Trainer(model, colour_builder, task="classification").task, ClassificationTask)
    with pytest.raises(ValueError, match="task='multilabel', but GraphFusionModel was created for 'classification'"):
        Trainer(model, colour_builder, task="multilabel")
    assert len(by_default.fit(*small)) == 1


def test_the_deprecated_ways_still_train_and_warn(make_model, small):
    model = make_model()
    with pytest.warns(GraphfuseDeprecationWarning, match=r"pass it, Trainer\(model, builder\)"):
        trainer = Trainer(model, epochs=1, **FAST)
    assert trainer.builder is model.builder
    model.task = ClassificationTask(model.head)
    with pytest.warns(GraphfuseDeprecationWarning, match="model.task is deprecated"):
        assert Trainer(model, model.builder, epochs=1, **FAST).task is model.task


def test_eval_batch_size_batches_evaluation_only(make_model, colour_builder, small, monkeypatch):
    train, val = small
    model = make_model(materialize=True)
    sizes = {True: [], False: []}
    forward = type(model).forward
    monkeypatch.setattr(type(model), "forward", lambda self, batch: sizes[self.training].append(batch.num_graphs)
                        or forward(self, batch))
    trainer = Trainer(model, colour_builder, epochs=1, eval_batch_size=12, **FAST)  # batch_size 8
    trainer.fit(train, val)
    assert sizes[True] == [8, 8, 8] and sizes[False] == [12]
    metrics = trainer.evaluate(val)
    assert sizes[False] == [12, 12]
    by_eights = Trainer(model, colour_builder, epochs=1, **FAST).evaluate(val)
    assert sizes[False] == [12, 12, 8, 4]
    assert metrics == pytest.approx(by_eights, rel=1e-6)  # the same numbers (up to float sums) in batches of 8


@pytest.mark.parametrize("option, value", [
    ("optimizer", "lamb"), ("schedule", "step"), ("precision", "fp16"), ("warmup", 1.0), ("clip_grad_norm", 0.0),
    ("eval_batch_size", 0), ("lr", "x"), ("lr", -1e-3), ("lr", float("nan")), ("weight_decay", -0.1),
    ("weight_decay", None), ("warmup", "0.1"), ("warmup", -0.1), ("clip_grad_norm", "1"), ("seed", -1), ("seed", 1.5),
])
def test_bad_options_are_refused(make_model, colour_builder, option, value):
    with pytest.raises(ValueError, match=option):
        Trainer(make_model(), colour_builder, **{option: value})


def test_class_out_of_range_is_refused_when_batching(make_model, colour_builder, small):
    train, val = small
    model = make_model(materialize=True)
    before = state_of(model)
    data = [*train[:7], (train[7][0], 3)]
    with pytest.raises(ValueError, match=r"num_classes") as error:
        Trainer(model, colour_builder, epochs=1, **FAST).fit(data)  # one batch holding the bad label
    assert any(entry.path.name == "data.py" for entry in error.traceback)  # from the collate check
    assert same_state(state_of(model), before)


def test_mixing_labelled_and_unlabelled_items_is_refused(make_model, colour_builder, small):
    train, val = small
    data = [*train[:7], train[7][0]]
    with pytest.raises(ValueError, match="Some items of this batch have a target"):
        Trainer(make_model(), colour_builder, epochs=1, **FAST).fit(data)


def test_resume_last_needs_a_checkpoint_dir(make_model, colour_builder, small):
    train, val = small
    with pytest.raises(ValueError, match="checkpoint_dir"):
        Trainer(make_model(), colour_builder, epochs=1, **FAST).fit(train[:8], resume="last")


@pytest.mark.parametrize("name", ["weights.safetensors", "weights.pt"])
def test_resume_from_weights_alone_is_refused(make_model, colour_builder, small, tmp_path, name):
    train, val = small
    model = make_model(materialize=True)
    path = save_checkpoint(tmp_path / name, model.state_dict())
    with pytest.raises(ValueError, match="no training state"):
        Trainer(model, colour_builder, epochs=1, **FAST).fit(train[:8], resume=path)


class _TrainOnlyLazy(torch.nn.Module):
    """Wraps a model with a lazy layer that only a training-mode forward reaches."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.extra = torch.nn.LazyLinear(1)

    def forward(self, batch):
        out = self.model(batch)
        return out + 0 * self.extra(out).sum() if self.training else out


def test_lazy_parameters_the_first_batch_does_not_reach_are_a_clear_error(make_model, colour_data):
    model = make_model()
    trainer = Trainer(_TrainOnlyLazy(model), model.builder, task=create_task(model.task_name, model), epochs=1,
                      batch_size=16, progress=False)
    with pytest.raises(ValueError, match=r"Parameters \['extra.weight', 'extra.bias'\] have lazy input sizes"):
        trainer.fit(colour_data["train"])


def test_true_false_labels_are_classes_one_and_zero(make_model, colour_builder, small):
    train = [(nodes, bool(label)) for nodes, label in small[0]]
    trainer = Trainer(make_model(num_classes=2), colour_builder, epochs=1, batch_size=8, progress=False)
    trainer.fit(train)
    assert trainer.predict(train)["target"].tolist() == [int(label) for _, label in train]


def test_weight_decay_skips_biases_norms_and_absent_type_embeddings(make_model, colour_builder):
    trainer = Trainer(make_model(materialize=True, pool="attention", fuse="concat"), colour_builder, progress=False)
    trainer._setup()
    decayed, kept = (group["params"] for group in trainer._optimizer().param_groups)
    names = {id(p): name for name, p in trainer.model.named_parameters()}
    decayed, kept = {names[id(p)] for p in decayed}, {names[id(p)] for p in kept}
    assert {"readout.pool.att_bias", "readout.fuse.absent", "head.mlp.1.bias"} <= kept
    assert "readout.pool.att_weight" in decayed and "head.mlp.1.weight" in decayed
    assert not any(name.endswith("bias") or "norm" in name for name in decayed)


def test_checkpoints_restore_every_random_generator():
    import random

    import numpy

    from graphfuse.train.engine import _rng_state, _set_rng_state

    state = _rng_state()
    expected = (torch.rand(3), random.random(), numpy.random.rand(3))
    torch.rand(5), random.random(), numpy.random.rand(5)
    _set_rng_state(state)
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]
    assert numpy.array_equal(numpy.random.rand(3), expected[2])


def test_evaluate_and_predict_leave_every_random_generator_as_they_found_it(make_model, colour_builder, small):
    """A user's seed before evaluation decides what they draw after it (the Trainer does not re-seed)."""
    import random

    import numpy

    trainer = Trainer(make_model(), colour_builder, epochs=1, **FAST)
    trainer.fit(*small)
    draws = []
    for seed in (100, 101):
        torch.manual_seed(seed)
        random.seed(seed)
        numpy.random.seed(seed)
        trainer.evaluate(small[1])
        trainer.predict(small[1])
        draws.append((torch.rand(1).item(), random.random(), numpy.random.rand()))
        torch.manual_seed(seed)
        random.seed(seed)
        numpy.random.seed(seed)
        assert draws[-1] == (torch.rand(1).item(), random.random(), numpy.random.rand())
    assert draws[0] != draws[1]


def test_fit_seeds_itself_so_two_fits_from_the_same_weights_train_the_same(make_model, colour_builder, small):
    first, second = make_model(seed=0), make_model(seed=0)
    torch.manual_seed(1)
    Trainer(first, colour_builder, epochs=1, **FAST).fit(*small)
    torch.manual_seed(2)  # the caller's state before fit does not matter
    Trainer(second, colour_builder, epochs=1, **FAST).fit(*small)
    assert same_state(state_of(first), state_of(second))


def test_fit_prints_one_line_per_epoch_when_progress_is_on(make_model, colour_builder, small, capsys):
    trainer = Trainer(make_model(), colour_builder, epochs=2, **{**FAST, "progress": True})
    trainer.fit(*small)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2  train_loss ") and "val_accuracy " in lines[0]
    assert lines[0].endswith(" s") and "  *  " in lines[0]  # the first epoch is the best so far
    Trainer(make_model(), colour_builder, epochs=1, **FAST).fit(*small)  # progress=False prints nothing
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]


def test_the_bar_over_the_epochs_stays_when_fit_ends(make_model, colour_builder, small, capsys):
    Trainer(make_model(), colour_builder, epochs=2, **{**FAST, "progress": True}).fit(*small)
    captured = capsys.readouterr()
    screen = captured.err.replace("\r", "\n").splitlines()
    last = [line for line in screen if line.strip()][-1]  # a cleared bar leaves an empty line, a kept one its text
    assert last.startswith("fit: 100%") and "2/2" in last and "accuracy=" in last
    assert not any(line.startswith("epoch 1:") for line in screen[screen.index(last):])  # the batch bars gave way
    assert [line for line in captured.out.splitlines() if line.startswith("epoch ")][-1].startswith("epoch 2/2  ")
