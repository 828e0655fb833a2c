"""A bounded in-memory cache of a frozen encoder's features, keyed by a content hash of its inputs."""
from __future__ import annotations

import hashlib

import numpy
from torch import Tensor

from graphfuse.data.cache import LRUCache


class FeatureCache(LRUCache[Tensor]):
    """The features of the last ``max_items`` distinct inputs (least recently used go first); safe
    to share between threads.

    Args:
        max_items (int): inputs kept; ``0`` turns the cache off.
    """

    def __init__(self, max_items: int) -> None:
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 0:
            raise ValueError(f"'cache_size' must be a non-negative int (0 turns the cache off), got {max_items!r}")
        super().__init__(max_items)

    @property
    def max_items(self) -> int:
        return self.capacity

    @staticmethod
    def key(tensor: Tensor) -> str:
        """A hash of the tensor's dtype, shape and values."""
        digest = hashlib.blake2b(f"{tensor.dtype}{tuple(tensor.shape)}".encode(), digest_size=20)
        digest.update(numpy.ascontiguousarray(tensor.detach().cpu().numpy()).tobytes())
        return digest.hexdigest()

