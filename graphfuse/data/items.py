"""Dataset items: a sample, or a ``(sample, target)`` pair."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def split_item(item: Any) -> tuple[Mapping[str, Any], Any]:
    """``(sample, target)`` of a dataset item; the target is ``None`` for a bare sample."""
    if isinstance(item, Mapping):
        return item, None
    if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], Mapping):
        return item[0], item[1]
    raise TypeError(f"A dataset item must be a sample (a mapping from modality to input) or a (sample, target) "
                    f"pair, got {type(item).__name__}")
