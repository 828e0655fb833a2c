import csv

import pytest

from graphfuse.train import CSVLogger, TensorBoardLogger, Trainer

FAST = dict(batch_size=8, lr=1e-2, progress=False)
pytestmark = pytest.mark.usefixtures("one_thread")


def read_csv(path):
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_csv_logger_writes_a_header_and_one_row_per_epoch(make_model, colour_builder, small, tmp_path):
    path = tmp_path / "logs" / "metrics.csv"
    history = Trainer(make_model(), colour_builder, epochs=2, callbacks=[CSVLogger(path)], **FAST).fit(*small)
    rows = read_csv(path)
    assert list(rows[0]) == ["epoch", "train_loss", "lr", "val_loss", "val_accuracy", "val_macro_f1", "seconds"]
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    assert [float(row["val_accuracy"]) for row in rows] == [record["val_accuracy"] for record in history]
    assert path.read_text(encoding="utf-8").count("train_loss") == 1
    Trainer(make_model(), colour_builder, epochs=1, callbacks=[CSVLogger(path)], **FAST).fit(*small)
    assert len(read_csv(path)) == 1  # a new fit starts the file afresh


def test_csv_logger_appends_on_resume_and_widens_the_header_for_new_keys(make_model, colour_builder, small, tmp_path):
    path = tmp_path / "metrics.csv"
    Trainer(make_model(), colour_builder, epochs=1, checkpoint_dir=tmp_path, callbacks=[CSVLogger(path)],
            **FAST).fit(small[0])
    assert list(read_csv(path)[0]) == ["epoch", "train_loss", "lr", "seconds"]
    Trainer(make_model(), colour_builder, epochs=3, checkpoint_dir=tmp_path, callbacks=[CSVLogger(path)],
            **FAST).fit(*small, resume="last")
    rows = read_csv(path)
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    assert rows[0]["val_accuracy"] == "" and rows[1]["val_accuracy"] != ""  # validation from the resume on


def test_tensorboard_logger_writes_every_epoch_value_as_a_scalar(make_model, colour_builder, small, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path / "tb", log_every_n_steps=2)
    history = Trainer(make_model(), colour_builder, epochs=2, callbacks=[logger], **FAST).fit(*small)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train_loss", "lr", "val_loss", "val_accuracy", "seconds", "train_loss_step"} <= tags
    assert [event.step for event in events.Scalars("val_accuracy")] == [0, 1]
    assert [event.value for event in events.Scalars("train_loss")] == pytest.approx(
        [record["train_loss"] for record in history])
    assert [event.step for event in events.Scalars("train_loss_step")] == [2, 4, 6]
    assert logger.writer is None  # closed when fit ended


def test_tensorboard_logger_without_tensorboard_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"needs the 'tensorboard' package .*pip install tensorboard"):
        TensorBoardLogger("runs")
