"""The registry of backbones: modules turning raw-ish inputs (images, token ids, waveforms) into hidden states.

A backbone factory is registered under a name with :func:`register_backbone` and built with
``BACKBONES.get(name)(**kwargs)``, so a saved pipeline can refer to its backbone by name and keyword arguments.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphfuse.registry import Registry

__all__ = ["BACKBONES", "register_backbone"]

BackboneFactory = Callable[..., Any]

#: Backbone factories (``factory(**kwargs) -> torch.nn.Module``) by name.
BACKBONES: Registry[BackboneFactory] = Registry(
    "backbone", hint="Register one with @register_backbone('{name}') on a factory returning the module")


def register_backbone(name: str) -> Callable[[BackboneFactory], BackboneFactory]:
    """Decorator registering ``factory(**kwargs) -> torch.nn.Module`` under ``name`` (once: a second
    registration of the same name raises)."""
    return BACKBONES.register(name)
