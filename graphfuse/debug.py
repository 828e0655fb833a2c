"""A debug switch for the input checks that read tensor values, as :mod:`torch_geometric.debug` has.

Checks on shapes, dtypes and types cost nothing and always run. Checks that read values (token
ids in range, every sample with a node, ...) would copy a device tensor to the host in every
forward, a synchronisation and a ``torch.compile`` graph break each: they run only in debug
mode, where they raise the same messages. A batch from :meth:`graphfuse.GraphBuilder.collate` is
valid by construction, and its graph structure is checked once, on the CPU, when it is collated.

Example:
    >>> with graphfuse.debug.debug():
    ...     model(batch)  # every value check runs
"""
from __future__ import annotations

from typing import Any

_ENABLED = {"value": False}


def is_debug_enabled() -> bool:
    """Whether the value checks run (off unless :class:`debug` or :func:`set_debug` turned them on)."""
    return _ENABLED["value"]


class set_debug:
    """Turns debug mode on or off; usable as a call or as a context manager that restores the
    previous mode on exit.

    Args:
        mode (bool): run the value checks.
    """

    def __init__(self, mode: bool) -> None:
        self.previous = is_debug_enabled()
        _ENABLED["value"] = bool(mode)

    def __enter__(self) -> None:
        pass

    def __exit__(self, *args: Any) -> None:
        _ENABLED["value"] = self.previous


class debug(set_debug):
    """Context manager that runs the value checks inside its block."""

    def __init__(self) -> None:
        super().__init__(True)
