"""One registry helper for every named thing: modalities, cross-modal strategies, convs, models, tasks.

Each kind keeps one :class:`Registry` beside its definitions and exposes the usual trio on top of
it (``register_model`` / ``list_models`` / ``create_model``, timm-style). Every registry behaves the
same: a name is registered once (a second registration raises), listings are sorted, an unknown
name raises an error that lists the known ones and says how to add one, and entries may carry a
family (``"graph"``, ``"baseline"``) to list them by group.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

T = TypeVar("T")


class Registry(Generic[T]):
    """Names mapped to objects (classes or factories) of one kind.

    Args:
        kind (str): what is registered, for messages (e.g. ``"model"``).
        hint (str, optional): how to add a new entry, appended to the error for an unknown name;
            ``{name}`` in it becomes that name. (default: :obj:`""`)

    Example:
        >>> convs = Registry("fusion conv", hint="Register one with register_conv('{name}', factory)")
        >>> @convs.register("gcn", family="graph")
        ... def gcn(channels): ...
        >>> convs.get("gcn"), convs.names()
    """

    def __init__(self, kind: str, hint: str = "") -> None:
        self.kind = kind
        self.hint = hint
        self._entries: dict[str, T] = {}
        self._families: dict[str, str | None] = {}

    @overload
    def register(self, name: str, obj: None = None, *, family: str | None = None) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T, *, family: str | None = None) -> T: ...

    def register(self, name, obj=None, *, family=None):
        """Registers ``obj`` under ``name`` and returns it; without ``obj``, a decorator that does."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"A {self.kind} name must be a non-empty string, got {name!r}")

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"A {self.kind} named {name!r} is already registered "
                                 f"({_describe(self._entries[name])}); choose another name")
            self._entries[name] = entry
            self._families[name] = family
            return entry

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        """The entry registered under ``name``; an unknown name raises a ``ValueError`` listing the known ones."""
        if name not in self._entries:
            hint = f". {self.hint.format(name=name)}" if self.hint else ""
            raise ValueError(f"Unknown {self.kind} {name!r}; registered: {self.names()}{hint}")
        return self._entries[name]

    def names(self, pattern: str = "*", family: str | None = None) -> list[str]:
        """Sorted names matching a shell-style ``pattern`` (e.g. ``"graph-*"``), optionally of one ``family``."""
        return sorted(name for name in fnmatch.filter(self._entries, pattern)
                      if family is None or self._families[name] == family)

    def name_of(self, entry: object) -> str | None:
        """The name ``entry`` itself (not an equal object) is registered under, or ``None``."""
        return next((name for name, registered in self._entries.items() if registered is entry), None)

    def unregister(self, name: str) -> T:
        """Removes ``name`` and returns its entry (e.g. to register a changed version under the same name)."""
        entry = self.get(name)
        del self._entries[name], self._families[name]
        return entry

    def copy(self) -> Registry[T]:
        """An independent registry with the same entries (e.g. to register into temporarily)."""
        other = Registry(self.kind, self.hint)
        other._entries, other._families = dict(self._entries), dict(self._families)
        return other

    def family(self, name: str) -> str | None:
        """The family ``name`` was registered with."""
        self.get(name)
        return self._families[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.kind!r}, names={self.names()})"


def _describe(entry: object) -> str:
    return getattr(entry, "__name__", None) or type(entry).__name__
