"""Models by name, timm-style: ``create_model("graph-gat", builder=..., task="classification", ...)``."""
from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from typing import Any

import torch

ModelFactory = Callable[..., torch.nn.Module]
_MODELS: dict[str, ModelFactory] = {}
_FAMILIES: dict[str, str] = {}


def register_model(name: str, family: str = "graph") -> Callable[[ModelFactory], ModelFactory]:
    """Decorator registering ``factory(**kwargs) -> nn.Module`` under ``name`` (once: a second
    registration of the same name raises). ``family`` groups models in benchmarks (``"graph"``,
    ``"baseline"``, ``"unimodal"``)."""

    def register(factory: ModelFactory) -> ModelFactory:
        if name in _MODELS:
            raise ValueError(f"A model named {name!r} is already registered; pick another name")
        _MODELS[name] = factory
        _FAMILIES[name] = family
        return factory

    return register


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Registered names matching a shell-style ``pattern`` (e.g. ``"graph-*"``), optionally of one
    ``family``."""
    return sorted(name for name in fnmatch.filter(_MODELS, pattern) if family is None or _FAMILIES[name] == family)


def model_family(name: str) -> str:
    if name not in _MODELS:
        raise ValueError(f"Unknown model {name!r}; registered: {list_models()}")
    return _FAMILIES[name]


def create_model(name: str, checkpoint_path: str | os.PathLike | None = None, **kwargs: Any) -> torch.nn.Module:
    """The registered model ``name`` built with ``kwargs`` (e.g. ``builder``, ``task``,
    ``num_classes``, ``hidden``), with weights from ``checkpoint_path`` when given (loaded
    safely: tensors only, see :func:`graphfuse.train.load_weights`)."""
    if name not in _MODELS:
        raise ValueError(f"Unknown model {name!r}; registered: {list_models()}")
    model = _MODELS[name](**kwargs)
    if checkpoint_path is not None:
        from graphfuse.train.checkpoint import load_weights

        load_weights(model, checkpoint_path)
    return model
