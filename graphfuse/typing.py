"""Optional-dependency flags and shared type aliases.

``WITH_DGL`` (or :func:`dgl_importable`) is computed on first access: importing DGL is slow,
and it only imports beside recent torch as dgl 1.1.3 with ``setuptools<70`` (install the
``dgl`` extra).
"""
from __future__ import annotations

import os
from functools import cache
from typing import Any

EdgeType = tuple[str, str, str]
NodeType = str


@cache
def dgl_importable() -> bool:
    os.environ.setdefault("DGLBACKEND", "pytorch")
    try:
        import dgl  # noqa: F401
    except Exception:  # DGL fails in many ways beside mismatched torch builds, not only ImportError.
        return False
    return True


def import_dgl() -> Any:
    """Imports DGL, or raises an ImportError saying how to install it."""
    if not dgl_importable():
        raise ImportError(
            "This needs DGL, which is not importable here. Install the extra in its own environment: "
            "pip install torch==2.13.0 && pip install 'graphfuse[dgl]' (dgl 1.1.3, setuptools<70, packaging)")
    import dgl

    return dgl


def __getattr__(name: str) -> Any:
    if name == "WITH_DGL":
        return dgl_importable()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
