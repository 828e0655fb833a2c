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


def ensure_writable_dir(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a folder this process can write files in, created (with its parents) where
    missing; checked by creating and removing a temporary file in it, so a run fails here, before
    any work, rather than at its first save. ``what`` names the option in the error, e.g.
    ``"Trainer 'checkpoint_dir'"``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{what} '{path}' is a file, not a folder; pass a folder (it is created where "
                                 f"missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(dir=path, prefix=".write-probe.", suffix=".tmp")
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise PermissionError(f"{what} '{path}' is not a folder this process can write in ({reason}); fix its "
                              f"permissions or choose another folder") from error
    return path
