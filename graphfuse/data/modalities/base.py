"""The modality interface: one raw input becomes a set of typed nodes."""
from __future__ import annotations

import pathlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from graphfuse.data.nodes import NodeSet, NodeSpec
from graphfuse.registry import Registry


class Modality(ABC):
    """Turns one raw input of a modality into a :class:`NodeSet`.

    Subclasses implement :meth:`featurize` (raw input -> nodes and intra-modal edges) and
    :meth:`empty` (the zero-node set standing in for an absent input), and name their
    intra-modal relation in :attr:`relation` (``None`` when they add no intra-modal edges).
    Register a subclass under a name with :func:`register_modality` to create it by name.

    :attr:`name` is the node type in error messages; a graph builder sets it to the key the
    modality is listed under.
    """

    name: str = "modality"
    relation: str | None = "intra"

    @abstractmethod
    def featurize(self, raw: Any) -> NodeSet:
        """Raw input -> node set. Raise ``ValueError`` / ``TypeError`` naming the modality on bad input."""

    @abstractmethod
    def empty(self) -> NodeSet:
        """The node set of a sample that lacks this modality."""

    def featurize_many(self, raws: Sequence[Any]) -> list[NodeSet]:
        """Many raw inputs -> their node sets, as :meth:`featurize` of each; modalities that run an
        encoder override it to run it once per batch."""
        return [self.featurize(raw) for raw in raws]

    def node_spec(self) -> NodeSpec:
        """What this modality's nodes carry (see :class:`~graphfuse.data.schema.NodeSpec`), read off
        :meth:`empty`; a modality whose ``x`` holds ids overrides it to give ``num_embeddings``."""
        empty = self.empty()
        return NodeSpec(kind=type(self).name, feature_shape=tuple(empty.x.shape[1:]),
                        integer=not empty.x.is_floating_point(),
                        positions=None if empty.pos is None else tuple(empty.pos.shape[1:]),
                        timed=empty.time is not None)

    def get_config(self) -> dict:
        """JSON-able constructor arguments (callables by registered name) that :meth:`from_config` takes."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_config(); implement it to save "
                                  f"the modality")

    def save_assets(self, folder: pathlib.Path) -> None:
        """Writes what the config cannot hold (tokenizer files, backbone weights) into ``folder``; by
        default nothing."""
        return None

    @classmethod
    def from_config(cls, config: dict, folder: pathlib.Path | None = None) -> Modality:
        """The modality rebuilt from :meth:`get_config` (and the assets :meth:`save_assets` wrote to ``folder``)."""
        return cls(**config)

    def __call__(self, raw: Any) -> NodeSet:
        return self.featurize(raw)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"


MODALITIES: Registry[type[Modality]] = Registry("modality", hint="Register a new one with @register_modality('{name}')")


def register_modality(name: str) -> Callable[[type[Modality]], type[Modality]]:
    """Class decorator registering a :class:`Modality` subclass under ``name``."""

    def decorator(cls: type[Modality]) -> type[Modality]:
        if not (isinstance(cls, type) and issubclass(cls, Modality)):
            raise TypeError(f"register_modality('{name}') expects a Modality subclass, got {cls!r}")
        MODALITIES.register(name, cls)
        cls.name = name
        return cls

    return decorator


def list_modalities() -> list[str]:
    """Names of the registered modalities."""
    return MODALITIES.names()


def create_modality(name: str, **kwargs: Any) -> Modality:
    """Creates a registered modality by name, passing ``kwargs`` to its constructor."""
    return MODALITIES.get(name)(**kwargs)
