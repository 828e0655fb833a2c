"""A saved pipeline's folder: written whole or not at all, read with an error naming each missing,
damaged or foreign file, and never through pickle.

The folder holds ``pipeline.json`` (the settings and a list of the other files with their sizes and
SHA-256 digests), ``model.safetensors`` and the builder's asset files (tokenizers, ...).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from graphfuse.checkpoint import CheckpointError, read_json
from graphfuse.config import asset_path, short_repr
from graphfuse.io import atomic_write_text

FORMAT = "graphfuse-pipeline"
FORMAT_VERSION = 1
CONFIG_FILE = "pipeline.json"
WEIGHTS_FILE = "model.safetensors"
_CHUNK = 1 << 20


def digest(path: Path) -> dict[str, Any]:
    """``{"bytes": size, "sha256": hex digest}`` of the file at ``path``."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": sha.hexdigest()}


def is_pipeline_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a ``pipeline.json`` of this format (of any version)."""
    try:
        config = read_json(folder / CONFIG_FILE, "the pipeline")
    except (OSError, CheckpointError):
        return False
    return isinstance(config, dict) and config.get("format") == FORMAT


def write_folder(folder: Path, config: dict[str, Any], write_files: Callable[[Path], None],
                 overwrite: bool = False) -> None:
    """Writes a pipeline folder: ``write_files(temporary)`` writes the weights and assets into a new
    folder beside ``folder``, ``pipeline.json`` (``config`` plus the list of those files) goes in last, and
    the finished folder is renamed into place. A failure leaves no ``folder`` behind (nor changes an
    existing one); an existing folder is replaced only if it holds a saved pipeline and ``overwrite``."""
    _check_target(folder, overwrite)
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        umask = os.umask(0)
        os.umask(umask)
        temporary.chmod(0o777 & ~umask)
        write_files(temporary)
        # Assets may be folders of files (a Hugging Face tokenizer's): every file is listed by its relative path.
        files = {path.relative_to(temporary).as_posix(): digest(path) for path in sorted(temporary.rglob("*"))
                 if path.is_file()}
        atomic_write_text(temporary / CONFIG_FILE, json.dumps({**config, "files": files}, indent=2, allow_nan=False))
        _move_into_place(temporary, folder)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _check_target(folder: Path, overwrite: bool) -> None:
    if not folder.exists():
        return
    if not folder.is_dir():
        raise FileExistsError(f"Cannot save a pipeline to {folder}: it is a file; choose a folder path")
    if not any(folder.iterdir()):
        return
    if not is_pipeline_folder(folder):
        raise FileExistsError(f"Cannot save a pipeline to {folder}: the folder holds other files, which saving would "
                              f"replace; choose a new or empty folder")
    if not overwrite:
        raise FileExistsError(f"{folder} already holds a saved pipeline; pass overwrite=True to replace it, or choose "
                              f"another folder")


def _move_into_place(temporary: Path, folder: Path) -> None:
    if not folder.exists():
        os.rename(temporary, folder)
        return
    if not any(folder.iterdir()):
        folder.rmdir()
        os.rename(temporary, folder)
        return
    old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".old"))
    os.rename(folder, old / folder.name)
    os.rename(temporary, folder)
    shutil.rmtree(old, ignore_errors=True)


def read_config(folder: Path) -> dict[str, Any]:
    """The checked ``pipeline.json`` of ``folder``, after checking every file it lists is there, whole
    and unchanged; a damaged, missing or changed file raises a :class:`~graphfuse.checkpoint.CheckpointError`
    naming it."""
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(f"No saved pipeline at {folder}: the path {problem}")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no {CONFIG_FILE}: it is not a saved pipeline (or its saving did not "
                                f"finish); save it again with Pipeline.save_pretrained")
    config = read_json(path, "the pipeline")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a graphfuse pipeline file (no \"format\": \"{FORMAT}\")")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path} has no valid \"format_version\" (got {short_repr(version, 40)}); the file is "
                              f"damaged, save the pipeline again")
    if version > FORMAT_VERSION:
        saved_by = short_repr(config.get("graphfuse_version", "unknown"), 40).strip("'")
        raise CheckpointError(f"{path} was saved by a newer graphfuse ({saved_by}, pipeline format version {version}); "
                              f"this graphfuse reads up to version {FORMAT_VERSION}: upgrade graphfuse to load it")
    missing = sorted({"task", "model", "builder", "files", "graphfuse_version"} - config.keys())
    if missing:
        raise CheckpointError(f"{path} lacks the entries {missing}; the file is damaged, save the pipeline again")
    if not isinstance(config["graphfuse_version"], str) or not config["graphfuse_version"]:
        raise CheckpointError(f"{path} has no valid \"graphfuse_version\" (got "
                              f"{short_repr(config['graphfuse_version'], 40)}, expected the version string of the "
                              f"graphfuse that saved it); the file is damaged, save the pipeline again")
    _check_files(folder, config["files"], path)
    return config


def _check_files(folder: Path, files: Any, config_path: Path) -> None:
    if not isinstance(files, Mapping) or WEIGHTS_FILE not in files:
        raise CheckpointError(f"{config_path} has no valid list of files (with {WEIGHTS_FILE}); the file is damaged, "
                              f"save the pipeline again")
    for name, expected in files.items():
        parts = name.split("/") if isinstance(name, str) else [name]
        path = folder
        try:
            for part in parts:  # each part a plain name: nothing outside the folder is ever read
                path = asset_path(path, part, f"{config_path} 'files'")
        except ValueError as error:
            raise CheckpointError(str(error)) from None
        if not path.is_file():
            raise CheckpointError(f"The pipeline file {path} (listed in {config_path}) is missing; copy the whole "
                                  f"folder, or save the pipeline again")
        if not isinstance(expected, Mapping) or digest(path) != {key: expected.get(key) for key in ("bytes", "sha256")}:
            raise CheckpointError(f"The pipeline file {path} is not the file that was saved (its size or SHA-256 "
                                  f"digest differs from {config_path}): it is truncated, damaged or replaced; save "
                                  f"the pipeline again")
