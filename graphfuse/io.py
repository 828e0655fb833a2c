"""File writing that never leaves a half-written file where a user's file was."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _usual_permissions(temporary: str) -> None:
    """Temporary files are created owner-only; the finished file gets what ``open()`` would give."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file in the same folder, replacing any
    existing file only once the new one is complete."""
    path = Path(path)
    handle = tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                         delete=False, encoding="utf-8")
    try:
        with handle:
            handle.write(text)
        _usual_permissions(handle.name)
        os.replace(handle.name, path)
    except BaseException:
        os.unlink(handle.name)
        raise


@contextmanager
def atomic_replace(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path in the folder of ``path`` for a writer that needs a file name (``torch.save``,
    ``safetensors``); on a clean exit the finished file replaces ``path``, on an error it is removed and any
    existing file at ``path`` stays as it was."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(descriptor)
    try:
        yield Path(temporary)
        _usual_permissions(temporary)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
