"""Callbacks: code of the user's that :meth:`Trainer.fit <graphfuse.train.Trainer.fit>` runs at set
points of training (loggers are callbacks)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Trainer = Any  # graphfuse.train.Trainer, which imports this module


class Callback:
    r"""Hooks that :meth:`Trainer.fit <graphfuse.train.Trainer.fit>` calls, in the order of the
    ``callbacks`` list; override the ones you need (each does nothing by default).

    Every process of a DDP run calls them (``trainer.info.is_main`` is true on rank 0 alone:
    write files there only). A callback may end training after the current epoch by setting
    ``trainer.should_stop = True`` in :meth:`on_epoch_end` (on every process).

    Example:
        >>> class PrintAccuracy(Callback):
        ...     def on_epoch_end(self, trainer, record):
        ...         if trainer.info.is_main:
        ...             print(record["epoch"], record["val_accuracy"])
        >>> Trainer(model, builder, callbacks=[PrintAccuracy(), CSVLogger("runs/log.csv")])
    """

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch, once the optimiser exists (``trainer.history`` holds the epochs
        of a resumed run)."""

    def on_batch_end(self, trainer: Trainer, step: int, loss: float) -> None:
        """After each optimiser step: ``step`` counts the steps of the whole run (1 after the
        first), ``loss`` is the step's loss (averaged over processes)."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After each epoch, its checkpoints and its summary line; ``record`` is the epoch's entry of
        the history (``epoch`` from 0, ``train_loss``, ``lr``, ``val_*``, ``seconds``): read it,
        do not change it."""

    def on_fit_end(self, trainer: Trainer, history: list[dict[str, Any]]) -> None:
        """When :meth:`~graphfuse.train.Trainer.fit` ends, after ``restore_best``; also when it
        raises, so that files are closed."""


def check_callbacks(callbacks: Sequence[Callback] | None) -> list[Callback]:
    """``callbacks`` as a list, each a :class:`Callback`."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or not isinstance(callbacks, Sequence):
        raise TypeError(f"Trainer 'callbacks' must be a list of Callback objects, got {type(callbacks).__name__}")
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TypeError(f"Trainer 'callbacks' must hold graphfuse.train.Callback objects (subclass it and "
                            f"override its hooks), got {type(callback).__name__}")
    return list(callbacks)
