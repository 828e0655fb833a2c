"""Models by name, timm-style: ``create_model("graph-gat", builder=..., task="classification", ...)``."""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

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


def create_model(name: str, checkpoint_path: str | os.PathLike | None = None, **kwargs: Any) -> torch.nn.Module:
    """The registered model ``name`` built with ``kwargs`` (e.g. ``builder``, ``task``,
    ``num_classes``, ``hidden``), with weights from ``checkpoint_path`` when given (loaded
    safely: tensors only, see :func:`graphfuse.train.load_weights`)."""
    model = MODELS.get(name)(**kwargs)
    if checkpoint_path is not None:
        from graphfuse.train.checkpoint import load_weights

        load_weights(model, checkpoint_path)
    return model
