"""A bounded in-memory cache of a frozen encoder's features, keyed by a content hash of its inputs."""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy
from torch import Tensor


class FeatureCache:
    """The features of the last ``max_items`` distinct inputs (least recently used go first).

    Args:
        max_items (int): inputs kept; ``0`` turns the cache off.
    """

    def __init__(self, max_items: int) -> None:
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 0:
            raise ValueError(f"'cache_size' must be a non-negative int (0 turns the cache off), got {max_items!r}")
        self.max_items = max_items
        self._entries: OrderedDict[str, Tensor] = OrderedDict()

    @staticmethod
    def key(tensor: Tensor) -> str:
        """A hash of the tensor's dtype, shape and values."""
        digest = hashlib.blake2b(f"{tensor.dtype}{tuple(tensor.shape)}".encode(), digest_size=20)
        digest.update(numpy.ascontiguousarray(tensor.detach().cpu().numpy()).tobytes())
        return digest.hexdigest()

    def get(self, key: str) -> Tensor | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: Tensor) -> None:
        if self.max_items == 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_items:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
