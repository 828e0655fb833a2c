import pytest

from graphfuse.train import Callback, Trainer

FAST = dict(batch_size=8, lr=1e-2, progress=False)
pytestmark = pytest.mark.usefixtures("one_thread")


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_fit_start(self, trainer):
        self.calls.append(("fit_start", len(trainer.history)))

    def on_batch_end(self, trainer, step, loss):
        self.calls.append(("batch", step, round(loss, 6)))

    def on_epoch_end(self, trainer, record):
        self.calls.append(("epoch", record["epoch"], round(record["train_loss"], 6), "val_accuracy" in record))

    def on_fit_end(self, trainer, history):
        self.calls.append(("fit_end", len(history)))


def test_hooks_run_in_order_with_the_steps_and_the_epoch_records(make_model, colour_builder, small):
    recorder = Recorder()
    history = Trainer(make_model(), colour_builder, epochs=2, callbacks=[recorder], **FAST).fit(*small)
    steps = [call for call in recorder.calls if call[0] == "batch"]
    assert [step for _, step, _ in steps] == [1, 2, 3, 4, 5, 6]  # 24 samples, batch size 8
    assert [round(sum(loss for _, _, loss in steps[i:i + 3]) / 3, 4) for i in (0, 3)] == [
        round(record["train_loss"], 4) for record in history]
    kinds = [call[0] for call in recorder.calls]
    assert kinds == ["fit_start", *["batch"] * 3, "epoch", *["batch"] * 3, "epoch", "fit_end"]
    assert recorder.calls[4][1:] == (0, round(history[0]["train_loss"], 6), True)
    assert recorder.calls[-1] == ("fit_end", 2)


def test_a_callback_stops_training_and_fit_end_runs_when_fit_raises(make_model, colour_builder, small):
    class StopAfterOne(Recorder):
        def on_epoch_end(self, trainer, record):
            super().on_epoch_end(trainer, record)
            trainer.should_stop = True

    stopper = StopAfterOne()
    assert len(Trainer(make_model(), colour_builder, epochs=3, callbacks=[stopper], **FAST).fit(small[0])) == 1

    recorder = Recorder()
    trainer = Trainer(make_model(), colour_builder, epochs=1, monitor="nonsense", callbacks=[recorder], **FAST)
    with pytest.raises(ValueError, match="monitor"):
        trainer.fit(small[0])
    assert recorder.calls[-1] == ("fit_end", 1)


def test_resumed_fits_start_with_the_resumed_history(make_model, colour_builder, small, tmp_path):
    Trainer(make_model(), colour_builder, epochs=1, checkpoint_dir=tmp_path, **FAST).fit(small[0])
    recorder = Recorder()
    Trainer(make_model(), colour_builder, epochs=2, checkpoint_dir=tmp_path, callbacks=[recorder],
            **FAST).fit(small[0], resume="last")
    assert recorder.calls[0] == ("fit_start", 1) and [call[1] for call in recorder.calls if call[0] == "batch"] == [
        4, 5, 6]


@pytest.mark.parametrize("callbacks, match", [
    (Recorder(), "'callbacks' must be a list of Callback objects, got Recorder"),
    ([print], "'callbacks' must hold graphfuse.train.Callback objects .* got builtin_function_or_method"),
])
def test_callbacks_that_are_not_callbacks_are_refused(make_model, colour_builder, callbacks, match):
    with pytest.raises(TypeError, match=match):
        Trainer(make_model(), colour_builder, callbacks=callbacks)
