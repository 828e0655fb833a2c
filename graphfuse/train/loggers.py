"""Loggers: callbacks writing each epoch's record where people read training runs (a CSV file;
TensorBoard when it is installed). Only rank 0 of a DDP run writes."""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from graphfuse.train.callbacks import Callback


class CSVLogger(Callback):
    r"""Writes one row per epoch to a CSV file: a header of the records' keys (``epoch`` from 0,
    ``train_loss``, ``lr``, ``val_*``, ``seconds``), then the epochs' values.

    A fit that resumes from a checkpoint rewrites the epochs it resumes (from the checkpoint's
    history, so rows of a crashed run's lost epochs go) and appends the new ones; a new fit
    starts the file afresh. A key that appears later (validation data given to a resumed run)
    widens the header.

    Args:
        path (str or Path): the CSV file; its folder is created.

    Example:
        >>> Trainer(model, builder, callbacks=[CSVLogger("runs/gat/metrics.csv")]).fit(train, val)
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.fields: list[str] = []

    def on_fit_start(self, trainer) -> None:
        if trainer.info.is_main:
            self._rewrite(trainer.history)

    def on_epoch_end(self, trainer, record: dict[str, Any]) -> None:
        if not trainer.info.is_main:
            return
        if not set(record) <= set(self.fields):
            self._rewrite(trainer.history)
            return
        with self.path.open("a", newline="", encoding="utf-8") as file:
            csv.DictWriter(file, self.fields).writerow(record)

    def _rewrite(self, records: list[dict[str, Any]]) -> None:
        self.fields = list(dict.fromkeys(key for record in records for key in record))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="", encoding="utf-8") as file:
            if self.fields:
                writer = csv.DictWriter(file, self.fields)
                writer.writeheader()
                writer.writerows(records)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}('{self.path}')"


class TensorBoardLogger(Callback):
    r"""Writes each epoch's values as TensorBoard scalars (``train_loss``, ``lr``, ``val_*``, ...,
    at step ``epoch``, from 0), through :class:`torch.utils.tensorboard.SummaryWriter`; needs the
    ``tensorboard`` package (``pip install tensorboard``).

    Args:
        log_dir (str or Path): the folder of the event files (``tensorboard --logdir`` it).
        log_every_n_steps (int, optional): also write the step loss as ``train_loss_step`` every
            this many optimiser steps; ``None`` for epochs only. (default: :obj:`None`)
    """

    def __init__(self, log_dir: str | os.PathLike, log_every_n_steps: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError(f"TensorBoardLogger needs the 'tensorboard' package ({error}); install it with "
                              f"`pip install tensorboard`, or log with CSVLogger") from None
        if log_every_n_steps is not None and (not isinstance(log_every_n_steps, int) or log_every_n_steps < 1):
            raise ValueError(f"TensorBoardLogger 'log_every_n_steps' must be an integer >= 1 or None, got "
                             f"{log_every_n_steps!r}")
        self.log_dir, self.log_every_n_steps = Path(log_dir), log_every_n_steps
        self._writer_class = SummaryWriter
        self.writer = None

    def on_fit_start(self, trainer) -> None:
        if trainer.info.is_main:
            self.writer = self._writer_class(str(self.log_dir))

    def on_batch_end(self, trainer, step: int, loss: float) -> None:
        if self.writer is not None and self.log_every_n_steps and step % self.log_every_n_steps == 0:
            self.writer.add_scalar("train_loss_step", loss, step)

    def on_epoch_end(self, trainer, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, record["epoch"])
        self.writer.flush()

    def on_fit_end(self, trainer, history: list[dict[str, Any]]) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}('{self.log_dir}')"
