"""Models by name, timm-style: ``create_model("graph-gat", builder=..., task="classification", ...)``."""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from graphfuse.checkpoint import load_weights
from graphfuse.registry import Registry

ModelFactory = Callable[..., torch.nn.Module]
MODELS: Registry[ModelFactory] = Registry("model", hint="Register one with @register_model('{name}')")


def register_model(name: str, family: str = "graph") -> Callable[[ModelFactory], ModelFactory]:
    """Decorator registering ``factory(**kwargs) -> nn.Module`` under ``name`` (once: a second
    registration of the same name raises). ``family`` groups models in benchmarks (``"graph"``,
    ``"baseline"``, ``"unimodal"``)."""

    return MODELS.register(name, family=family)


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Registered names matching a shell-style ``pattern`` (e.g. ``"graph-*"``), optionally of one
    ``family``."""
    return MODELS.names(pattern, family)


def model_family(name: str) -> str:
    """The family ``name`` was registered with."""
    return MODELS.family(name)


def create_model(name: str, checkpoint_path: str | os.PathLike | None = None, seed: int | None = None,
                 **kwargs: Any) -> torch.nn.Module:
    """The registered model ``name`` built with ``kwargs`` (e.g. ``builder`` or ``schema``, ``task``,
    ``num_classes``, ``hidden_channels``), with weights from ``checkpoint_path`` when given (loaded
    safely: tensors only, see :func:`graphfuse.checkpoint.load_weights`).

    A model is built from the schema of its data alone (``builder.schema()``; a ``builder`` stands
    for its schema). For one release a model created from a ``builder`` also remembers it as
    ``model.builder``, so that ``Trainer(model)`` keeps working (with a ``DeprecationWarning``: pass
    ``Trainer(model, builder=builder)``).

    With ``seed``, the initial weights are drawn from a generator seeded with it, the same in every
    run and process, and the caller's random state is left as it was.

    The model records how it was made as ``model.creation_config``, ``{"name": name, "kwargs":
    kwargs}`` without the schema (or builder), the seed and the checkpoint, so that a
    :class:`~graphfuse.Pipeline` can save it as JSON and build it again."""
    factory = MODELS.get(name)
    creation_config = {"name": name, "kwargs": {key: value for key, value in kwargs.items()
                                                if key not in ("builder", "schema")}}
    builder = kwargs.pop("builder", None)
    if builder is not None:
        if "schema" in kwargs:
            raise TypeError(f"create_model({name!r}) takes 'schema' or 'builder' (which stands for its schema), "
                            f"not both")
        kwargs["schema"] = builder
    if seed is None:
        model = factory(**kwargs)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = factory(**kwargs)
    if builder is not None:
        model.builder = builder
    model.creation_config = creation_config
    if checkpoint_path is not None:
        load_weights(model, checkpoint_path)
    return model
