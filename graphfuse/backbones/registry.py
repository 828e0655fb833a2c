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


def backbone_to_config(backbone: torch.nn.Module) -> dict[str, Any]:
    """``{"type": registered name, "config": backbone.get_config()}`` of a registered backbone class."""
    name = next((name for name in BACKBONES.names() if BACKBONES.get(name) is type(backbone)), None)
    if name is None or not callable(getattr(backbone, "get_config", None)):
        raise ValueError(f"Cannot save a backbone of class {type(backbone).__name__}: only registered backbone "
                         f"classes with get_config() can be; register it with @register_backbone('name')")
    return {"type": name, "config": backbone.get_config()}


def backbone_from_config(config: dict[str, Any]) -> torch.nn.Module:
    """The backbone :func:`backbone_to_config` describes, rebuilt with random weights."""
    cls = BACKBONES.get(config["type"])
    return cls.from_config(config["config"]) if hasattr(cls, "from_config") else cls(**config["config"])
