"""Samples from table-like data by column names: a Hugging Face ``datasets.Dataset``, a pandas
``DataFrame``, a dict of columns or a list of row dicts."""
from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from typing import Any


def from_columns(source: Any, modalities: Mapping[str, str], target: str | None = None) -> ColumnSamples:
    r"""The rows of ``source`` as graphfuse samples, read lazily (row by row, when indexed).

    Each row gives the sample ``{modality: row[column]}``, with ``(sample, row[target])`` pairs
    when ``target`` is given: what :meth:`Trainer.fit <graphfuse.train.Trainer.fit>`,
    :func:`~graphfuse.train.featurize_dataset` and :class:`~graphfuse.data.RawDataset` take.
    A ``None`` value (or a missing value of a pandas column, ``NaN``) leaves the modality out of
    that sample. Values pass as they are: Hugging Face image columns give PIL images and audio
    columns ``{"array", "sampling_rate", "path"}`` dicts, which the built-in modalities read.

    Args:
        source: a ``datasets.Dataset`` (only the named columns are read, so other media columns
            are never decoded), a pandas ``DataFrame``, a dict of equal-length columns, or a list
            of row dicts (any object with the same interface).
        modalities (Mapping[str, str]): modality (the builder's key) -> column name.
        target (str, optional): the column of the targets. (default: :obj:`None`)

    Example:
        >>> dataset = datasets.load_dataset("my/captions", split="train")
        >>> train = from_columns(dataset, {"text": "caption", "image": "img"}, target="label")
        >>> Trainer(model, builder, num_workers=4).fit(train)
    """
    if not isinstance(modalities, Mapping) or not modalities or not all(
            isinstance(column, str) for column in modalities.values()):
        raise TypeError(f"from_columns 'modalities' must map each modality to a column name, e.g. "
                        f"{{'text': 'caption', 'image': 'img'}}; got {modalities!r}")
    if target is not None and not isinstance(target, str):
        raise TypeError(f"from_columns 'target' must be a column name or None, got {type(target).__name__}")
    needed = [*dict.fromkeys([*modalities.values(), *([target] if target is not None else [])])]
    table = _table(source, needed)
    return ColumnSamples(table, dict(modalities), target, range(len(table)))


class ColumnSamples(Sequence):
    """A lazy sequence of samples (or ``(sample, target)`` pairs) read from a table's ``rows``;
    made by :func:`from_columns`. Indexing with a slice gives the samples of those rows."""

    def __init__(self, table: _Table, modalities: dict[str, str], target: str | None, rows: Sequence[int]) -> None:
        self.table, self.modalities, self.target, self.rows = table, modalities, target, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return ColumnSamples(self.table, self.modalities, self.target, self.rows[index])
        row = self.rows[operator.index(index)]  # IndexError past the end ends iteration
        sample = {}
        for modality, column in self.modalities.items():
            value = self.table.value(row, column)
            if not _missing(value):
                sample[modality] = value
        if self.target is None:
            return sample
        label = self.table.value(row, self.target)
        if _missing(label):
            raise ValueError(f"Row {row} has no target (None in column '{self.target}'); drop the unlabelled rows, "
                             f"or read them without target=")
        return sample, label

    def __repr__(self) -> str:
        target = "" if self.target is None else f", target={self.target!r}"
        return f"{self.__class__.__name__}({len(self)} rows, modalities={self.modalities}{target})"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class _Table:
    """Row ``row``, column ``column`` of a source, whatever its kind."""

    def __init__(self, source: Any, kind: str, columns: list[str]) -> None:
        self.source, self.kind, self.columns = source, kind, columns

    def __len__(self) -> int:
        if self.kind == "columns":
            return len(next(iter(self.source.values()))) if self.source else 0
        return len(self.source)

    def value(self, row: int, column: str) -> Any:
        if self.kind == "columns":
            return self.source[column][row]
        if self.kind == "frame":
            return self.source[column].iloc[row]
        record = self.source[row]
        if column not in record:
            raise ValueError(f"Row {row} has no column '{column}' (it has {list(record)}); give every row the "
                           f"columns named in from_columns, with None for a missing modality")
        return record[column]


def _table(source: Any, needed: list[str]) -> _Table:
    if hasattr(source, "column_names") and hasattr(source, "select_columns"):  # datasets.Dataset
        _check_columns(list(source.column_names), needed)
        return _Table(source.select_columns(needed), "rows", needed)
    if hasattr(source, "columns") and hasattr(source, "iloc"):  # pandas.DataFrame
        _check_columns([str(column) for column in source.columns], needed)
        return _Table(source, "frame", needed)
    if isinstance(source, Mapping):
        _check_columns(list(source), needed)
        lengths = {column: len(source[column]) for column in needed}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"from_columns needs columns of equal length, got {lengths}")
        return _Table(source, "columns", needed)
    if isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        if len(source) and isinstance(source[0], Mapping):
            _check_columns(list(source[0]), needed)
        elif len(source):
            raise TypeError(f"from_columns takes a list of row dicts, got a list of {type(source[0]).__name__}")
        return _Table(source, "rows", needed)
    raise TypeError(f"from_columns takes a datasets.Dataset, a pandas DataFrame, a dict of columns or a list of row "
                    f"dicts, got {type(source).__name__}")


def _check_columns(available: list[str], needed: list[str]) -> None:
    missing = [column for column in needed if column not in available]
    if missing:
        raise ValueError(f"from_columns names column{'s' if len(missing) > 1 else ''} {missing} that the data does not "
                       f"have; its columns are {available}")
