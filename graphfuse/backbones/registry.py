"""The backbone registry: pretrained encoders (and the wrappers that turn them into per-node hidden
states) by name, so that a saved pipeline can rebuild them from JSON."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from graphfuse.registry import Registry

BACKBONES: Registry[Callable[..., torch.nn.Module]] = Registry(
    "backbone", hint="Register one with @register_backbone('{name}')")


def register_backbone(name: str, family: str | None = None) -> Callable[[Callable[..., torch.nn.Module]],
                                                                       Callable[..., torch.nn.Module]]:
    """Decorator registering a backbone class or factory under ``name`` (``family`` groups them:
    ``"wrapper"`` for graphfuse's wrappers of other encoders)."""
    return BACKBONES.register(name, family=family)


def list_backbones(pattern: str = "*", family: str | None = None) -> list[str]:
    """Names of the registered backbones."""
    return BACKBONES.names(pattern, family=family)


def create_backbone(name: str, **kwargs: Any) -> torch.nn.Module:
    """Creates a registered backbone by name, passing ``kwargs`` to its class or factory."""
    return BACKBONES.get(name)(**kwargs)
