"""The checks every ``python -m graphfuse.bench`` command runs on its options before any work starts:
positive numbers, lists of names, and output paths that can be written."""
from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from graphfuse.io import ensure_writable_dir


class UsageError(SystemExit):
    """A command-line error: exits with status 2; ``str(error)`` is the ``error: ...`` message
    (``python -m graphfuse.bench`` prints it)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = 2


def check_positive(args: argparse.Namespace, names: Iterable[str]) -> None:
    """Refuses any option of ``names`` (``args`` attributes) that is set and below 1."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UsageError(f"error: --{name.replace('_', '-')} must be at least 1, got {value}")


def names_of(option: str, values: str | Sequence[str], choices: Sequence[str] | None = None) -> list[str]:
    """The comma- (and, for ``nargs`` options, space-) separated names of ``option``, each once (in
    the order first given); refuses an empty list, an empty name and, when ``choices`` are given, a
    name that is not one of them."""
    given = [values] if isinstance(values, str) else list(values)
    names = [name.strip() for value in given for name in value.split(",")]
    listed = f"; choose from {', '.join(choices)}" if choices is not None else ""
    if not any(names):
        raise UsageError(f"error: {option} is empty; name at least one{listed}")
    if not all(names):
        raise UsageError(f"error: {option} {','.join(given)!r} has an empty name (a stray comma?){listed}")
    unknown = [name for name in names if choices is not None and name not in choices]
    if unknown:
        raise UsageError(f"error: unknown {option.lstrip('-')} {unknown} in {option}{listed}")
    return list(dict.fromkeys(names))


def check_writable_folder(option: str, folder: str | os.PathLike) -> None:
    """Creates ``folder`` (and its parents) if missing, and refuses it unless it is a folder this
    process can write to (:func:`graphfuse.io.ensure_writable_dir`), as a usage error."""
    try:
        ensure_writable_dir(folder, f"{option} folder")
    except OSError as error:
        raise UsageError(f"error: {error}") from None


def check_writable_file(option: str, path: str | os.PathLike) -> None:
    """Refuses ``path`` when it is a folder or when its folder (created if missing) cannot be written to."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"error: {option} '{path}' is a folder; name a file in it, e.g. '{path / 'report.json'}'")
    check_writable_folder(option, path.parent)
