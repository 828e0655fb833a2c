"""The modality interface: one raw input becomes a set of typed nodes."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from graphfuse.config import as_json, constructor_config
from graphfuse.data.nodes import NodeSet, NodeSpec
from graphfuse.registry import Registry


class Modality(ABC):
    """Turns one raw input of a modality into a :class:`NodeSet`.

    Subclasses implement :meth:`featurize` (raw input -> nodes and intra-modal edges) and
    :meth:`empty` (the zero-node set standing in for an absent input), and name their
    intra-modal relation in :attr:`relation` (``None`` when they add no intra-modal edges).
    Register a subclass under a name with :func:`register_modality` to create it by name.

    A graph builder hands a modality all its raw inputs of a batch at once
    (:meth:`featurize_many`); the default featurises them one by one, and a modality with a
    batched path overrides it (the built-in text, image and audio modalities do). The builder
    validates every node set it receives (:meth:`NodeSet.validate`) unless the modality
    returns it already validated, as the built-in modalities do for nodes they check while
    making them.

    :attr:`name` is the node type in error messages; a graph builder sets it to the key the
    modality is listed under.

    A modality is saved as JSON data (:func:`modality_config`): :meth:`get_config` gives its
    constructor arguments (by default read back from the attributes of the same names), and
    :meth:`save_assets` writes what JSON cannot hold (a tokenizer's files) beside it;
    :meth:`from_config` builds it again.
    """

    name: str = "modality"
    relation: str | None = "intra"

    @abstractmethod
    def featurize(self, raw: Any) -> NodeSet:
        """Raw input -> node set. Raise ``ValueError`` / ``TypeError`` naming the modality on bad input."""

    @abstractmethod
    def empty(self) -> NodeSet:
        """The node set of a sample that lacks this modality."""

    def conforms_to_empty(self) -> bool:
        """Whether every node set this modality makes is validated and has :meth:`empty`'s layout (each
        attribute's presence, dtype and trailing shape) by construction, as its tests hold, so that a graph
        builder need not compare each one with :meth:`empty`'s. ``False`` here: the builder compares.
        The built-in text, image and audio modalities say ``True`` for themselves, not for subclasses
        (which may change either side)."""
        return False

    def featurize_many(self, raws: Sequence[Any]) -> list[NodeSet]:
        """Many raw inputs -> their node sets, equal to :meth:`featurize` of each.

        The default calls :meth:`featurize` on each input, so a modality that only implements
        :meth:`featurize` works unchanged. A modality overrides it to featurise inputs together
        (one FFT for many clips, one encoder call per batch); the node sets it returns may then
        share storage (each ``x`` a view of one batch tensor)."""
        return [self.featurize(raw) for raw in raws]

    def node_spec(self) -> NodeSpec:
        """What this modality's nodes carry (see :class:`~graphfuse.data.schema.NodeSpec`), read off
        :meth:`empty`; a modality whose ``x`` holds ids overrides it to give ``num_embeddings``."""
        empty = self.empty()
        return NodeSpec(kind=type(self).name, feature_shape=tuple(empty.x.shape[1:]),
                        integer=not empty.x.is_floating_point(),
                        positions=None if empty.pos is None else tuple(empty.pos.shape[1:]),
                        timed=empty.time is not None)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments as plain JSON values: no tensors, dtypes or callables (a
        function is given by its registered name, see :func:`graphfuse.data.register_function`).
        The default reads each argument of ``__init__`` back from the attribute of the same name."""
        return constructor_config(self, f"Modality '{self.name}' ({type(self).__name__})")

    def save_assets(self, folder: Path) -> None:
        """Writes the files :meth:`get_config` refers to into ``folder`` (e.g. a tokenizer's).
        The default writes nothing."""
        return None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], folder: Path | None = None) -> Modality:
        """The modality :meth:`get_config` described, reading its assets from ``folder``."""
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


def modality_config(modality: Modality) -> dict[str, Any]:
    """``{"type": registered name, "config": modality.get_config()}``, the JSON form of ``modality``."""
    name = MODALITIES.name_of(type(modality))
    if name is None:
        raise ValueError(f"Modality '{modality.name}' is a {type(modality).__name__}, which is not registered, so it "
                         f"cannot be saved; register the class with @register_modality('some-name')")
    return {"type": name, "config": as_json(modality.get_config(), f"Modality '{modality.name}' setting")}


def modality_from_config(config: Mapping[str, Any], folder: Path | None = None) -> Modality:
    """The modality of :func:`modality_config`'s output, its assets read from ``folder``."""
    if not isinstance(config, Mapping) or not isinstance(config.get("config"), Mapping):
        raise ValueError(f"A modality's config is {{'type': name, 'config': {{...}}}}, got {config!r}")
    return MODALITIES.get(config.get("type")).from_config(dict(config["config"]), folder)


def list_modalities() -> list[str]:
    """Names of the registered modalities."""
    return MODALITIES.names()


def create_modality(name: str, **kwargs: Any) -> Modality:
    """Creates a registered modality by name, passing ``kwargs`` to its constructor."""
    return MODALITIES.get(name)(**kwargs)
