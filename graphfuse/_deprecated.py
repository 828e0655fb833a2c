"""Re-exports of public names that moved, kept for one release with a ``DeprecationWarning``.

The old packages (``graphfuse.graph``, ``graphfuse.modalities``) and the names that left a layer
(``graphfuse.nn.EarlyFusion`` ...) resolve here lazily: the new home is imported only when an old
name is used, so these aliases add no import edge between layers.
"""
from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterable
from typing import Any


def moved(old: str, new: str, names: Iterable[str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``old`` that serves ``names`` from module ``new`` with a warning."""
    names = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        warnings.warn(f"{old}.{name} moved to {new}.{name}; import it from there ({old} keeps this alias for "
                      f"one release)", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(new), name)

    return __getattr__
