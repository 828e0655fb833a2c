"""A least-recently-used cache of edge templates with a memory budget."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from torch import Tensor


class TemplateCache:
    """Maps a structure key to its edge template, evicting the least recently used templates
    once they hold more than ``max_bytes``. A template larger than the budget is not kept.

    Templates are shared: callers must not write into them.
    """

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._templates: OrderedDict[Hashable, Tensor] = OrderedDict()

    def get(self, key: Hashable) -> Tensor | None:
        template = self._templates.get(key)
        if template is not None:
            self._templates.move_to_end(key)
        return template

    def put(self, key: Hashable, template: Tensor) -> Tensor:
        size = template.numel() * template.element_size()
        if size <= self.max_bytes:
            self._templates[key] = template
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, evicted = self._templates.popitem(last=False)
                self.bytes -= evicted.numel() * evicted.element_size()
        return template

    def clear(self) -> None:
        self._templates.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._templates)
