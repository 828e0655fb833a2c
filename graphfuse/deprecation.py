"""Names that moved keep working for one release: the old module's ``__getattr__`` returns the object
from its new home with a :class:`GraphfuseDeprecationWarning` naming it.

Every deprecation graphfuse warns about is a :class:`GraphfuseDeprecationWarning`, a
:class:`DeprecationWarning`, so one filter selects them all:
``warnings.simplefilter("error", GraphfuseDeprecationWarning)`` finds the deprecated calls in a code base.

The new home is imported when an old name is used, never before (by name, through ``importlib``), so
an alias adds no import between layers: ``graphfuse.nn.EarlyFusion`` serves
``graphfuse.baselines.EarlyFusion`` although ``graphfuse.baselines`` sits above ``graphfuse.nn``.
"""
from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any


class GraphfuseDeprecationWarning(DeprecationWarning):
    """A graphfuse API that still works but goes in the next release; the message names its replacement."""


def moved(old: str, new: str, names: Iterable[str] | Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for module ``old`` that serves ``names`` from module ``new`` with a
    warning; a mapping gives each old name its new one (``{"BASELINES": "COMPARISONS"}``)."""
    renamed = dict(names) if isinstance(names, Mapping) else {name: name for name in names}

    def __getattr__(name: str) -> Any:
        if name not in renamed:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        target = renamed[name]
        warnings.warn(f"{old}.{name} moved to {new}.{target}; import it from {new} (the old name goes in the next "
                      f"release)", GraphfuseDeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(new), target)

    return __getattr__


def renamed(**new_names: str) -> Callable[[Callable], Callable]:
    """Decorator: keyword arguments under their old names (``hidden=``) keep working for one release,
    passed on under their new ones (``@renamed(hidden="hidden_channels")``) with a warning."""

    def decorate(function: Callable) -> Callable:
        owner = function.__qualname__.removesuffix(".__init__")

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in new_names.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{owner} got both {old!r} and its new name {new!r}; pass {new!r} alone")
                    warnings.warn(f"{owner}({old}=...) is now {owner}({new}=...), the vocabulary PyG uses (the old "
                                  f"name goes in the next release)", GraphfuseDeprecationWarning, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return wrapper

    return decorate
