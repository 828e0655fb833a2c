"""Least-recently-used caches with a budget, safe to share between threads: edge templates by
structure key (a memory budget) and, built on the same base, a frozen encoder's features."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from torch import Tensor

Value = TypeVar("Value")


class LRUCache(Generic[Value]):
    """Maps keys to values, evicting the least recently used once the values' sizes (:meth:`size`,
    1 per value unless a subclass weighs them) add up to more than ``capacity``. A value larger
    than the capacity is not kept. Every operation holds a lock, so threads (e.g. ``collate`` in
    thread-parallel loaders) may share one cache; a pickled cache arrives empty.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._entries: OrderedDict[Hashable, Value] = OrderedDict()
        self._lock = threading.Lock()

    def size(self, value: Value) -> int:
        return 1

    def get(self, key: Hashable) -> Value | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Value) -> Value:
        """Keeps ``value`` under ``key`` (replacing what was there) and returns it."""
        size = self.size(value)
        if size > self.capacity:
            return value
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self.used -= self.size(previous)
            self._entries[key] = value
            self.used += size
            while self.used > self.capacity:
                _, evicted = self._entries.popitem(last=False)
                self.used -= self.size(evicted)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.used = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __getstate__(self) -> dict[str, Any]:
        return {"capacity": self.capacity}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["capacity"])


class TemplateCache(LRUCache[Tensor]):
    """Maps a structure key to its edge template, evicting the least recently used templates
    once they hold more than ``max_bytes``. A template larger than the budget is not kept.

    Templates are shared: callers must not write into them.
    """

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        super().__init__(max_bytes)

    @property
    def max_bytes(self) -> int:
        return self.capacity

    @property
    def bytes(self) -> int:
        return self.used

    def size(self, value: Tensor) -> int:
        return value.numel() * value.element_size()
