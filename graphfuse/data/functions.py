"""User functions by name: edge rules (``FeatureModality(edges=...)``) and cross-modal edge functions
(``CallableStrategy``) are saved as the name they are registered under, and found by it when loaded."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphfuse.registry import Registry

FUNCTIONS: Registry[Callable[..., Any]] = Registry(
    "graph function", hint="Import the module that registers it (with @register_function('{name}')) before loading")
"""Edge rules and edge functions by name."""


def register_function(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering an edge rule or edge function under ``name`` (once), so that a builder
    using it can be saved (as ``name``) and loaded (in a process that has imported the module
    registering it).

    Example:
        >>> @register_function("my-project.knn-edges")
        ... def knn_edges(nodes):
        ...     ...
        >>> FeatureModality(dim=8, edges=knn_edges)  # or edges="my-project.knn-edges"
    """

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise TypeError(f"register_function('{name}') expects a function, got {fn!r}")
        return FUNCTIONS.register(name, fn)

    return decorator


def function_name(fn: Callable[..., Any], where: str) -> str:
    """The name ``fn`` is registered under; an unregistered function (a lambda, a local function)
    raises an error naming ``where`` it is used and how to register it."""
    name = FUNCTIONS.name_of(fn)
    if name is None:
        label = getattr(fn, "__qualname__", None) or repr(fn)
        raise ValueError(
            f"{where} uses the function {label}, which is not registered, so it cannot be saved: settings are saved "
            f"as JSON, which refers to a function by name. Define it at module level and register it with "
            f"@graphfuse.data.register_function('some-name') (importing that module before loading the saved "
            f"pipeline), then build with it again")
    return name


def get_function(name: Any, where: str) -> Callable[..., Any]:
    """The function registered under ``name``, for ``where`` (named in the error for an unknown name)."""
    if not isinstance(name, str):
        raise TypeError(f"{where} refers to a function by its registered name, got {name!r}")
    try:
        return FUNCTIONS.get(name)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
