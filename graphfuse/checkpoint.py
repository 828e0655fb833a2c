"""Saving and loading checkpoints without ever running code stored in a file.

A ``.pt`` checkpoint holds the model state plus any training state (optimizer, scheduler, counters, RNG
states) and is read only through ``torch.load(..., weights_only=True)``; a ``.safetensors`` file holds the
model state alone. Writes are atomic: a failed save never damages an existing checkpoint. A saved file that
cannot be loaded (damaged, truncated, of another kind or of a newer format) raises :class:`CheckpointError`
naming the file and what is wrong; :func:`read_json` gives saved JSON files (pipelines, builders) the same.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import struct
import zipfile
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import safetensors
import safetensors.torch
import torch
from torch import Tensor
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from graphfuse.config import short_repr
from graphfuse.io import atomic_replace

if TYPE_CHECKING:
    from torch.nn.modules.module import _IncompatibleKeys

CHECKPOINT_FORMAT = "graphfuse-checkpoint"
CHECKPOINT_VERSION = 1
SAFETENSORS_SUFFIX = ".safetensors"
# Prefixes that wrappers put in front of every key: DistributedDataParallel and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save has written zip archives since torch 1.6
_DOS_FOLDER = 0x10  # the folder bit of a zip entry's external attributes
# A refusal of the weights-only unpickler that names a Python object (a GLOBAL of a module and a name), as opposed
# to bytes it cannot parse.
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([A-Za-z_][\w.]*) (?:was|whose)")
# What torch.load raises, besides an UnpicklingError, on bytes that are not a checkpoint it wrote.
_UNREADABLE = (RuntimeError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, AssertionError,
               OverflowError, struct.error)


class CheckpointError(ValueError):
    """A saved file (a checkpoint, or a file of a saved pipeline or builder) cannot be loaded: it is damaged,
    truncated, of another kind or of a newer format. The message names the file and what is wrong."""


#: What rebuilding an object from a saved configuration may raise when the configuration is wrong: bad
#: arguments, missing entries or files, and sizes too large to allocate (a hostile file may ask for any
#: size); loading turns each into a :class:`CheckpointError` naming the file.
REBUILD_ERRORS = (ValueError, TypeError, LookupError, FileNotFoundError, OverflowError, MemoryError, RuntimeError)


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint holds objects other than tensors and plain containers, which unpickling could turn into
    code execution; graphfuse refuses to load it."""


def save_checkpoint(path: str | os.PathLike, model_state: Mapping[str, Tensor], **state: Any) -> Path:
    """Saves ``model_state`` (``model.state_dict()``) and any training ``state`` to ``path``.

    A ``.pt`` (or any non-``.safetensors``) path gets
    ``{"format": "graphfuse-checkpoint", "version": 1, "model": model_state, **state}`` through ``torch.save``,
    e.g. ``save_checkpoint(path, model.state_dict(), optimizer=optimizer.state_dict(), trainer={"epoch": 3})``.
    ``state`` may hold tensors, numbers, strings and plain containers, so that :func:`load_checkpoint` can read
    it back safely. A ``.safetensors`` path gets the model state alone.

    The file is written beside ``path`` and then moved over it, so an existing checkpoint is never left
    half-written; missing parent folders are created. Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    problem = _state_dict_problem(model_state)
    if problem:
        raise TypeError(f"save_checkpoint: model_state is not a state dict (model.state_dict()): {problem}; pass "
                        f"values other than tensors as keyword state instead")
    reserved = sorted({"format", "version"} & state.keys())
    if reserved:
        raise ValueError(f"save_checkpoint: {reserved} are reserved checkpoint entries; store that state under "
                         f"other names")
    path.parent.mkdir(parents=True, exist_ok=True)
    if _is_safetensors(path):
        if state:
            raise ValueError(f"save_checkpoint: {path} is a safetensors file, which holds tensors only, so it "
                             f"cannot store {sorted(state)}; use a '.pt' path to save the full training state")
        with atomic_replace(path) as temporary:
            safetensors.torch.save_file(_unshared(model_state), temporary)
        return path
    checkpoint = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": model_state, **state}
    with atomic_replace(path) as temporary:
        torch.save(checkpoint, temporary)
        # Unpickle it the way load_checkpoint will, so that a checkpoint which could never be loaded is refused
        # now rather than after the run; on the meta device no tensor data is read or allocated.
        try:
            torch.load(temporary, map_location="meta", mmap=True, weights_only=True)
        except pickle.UnpicklingError as error:
            raise TypeError(f"save_checkpoint: the state for {path} holds an object that safe loading refuses "
                            f"({_refusal_detail(error)}); keep only tensors, numbers, strings and plain "
                            f"containers in it (e.g. convert NumPy arrays with torch.from_numpy)") from None
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Loads a checkpoint written by :func:`save_checkpoint`, or a bare state dict saved with
    ``torch.save(model.state_dict())``, as ``{"format": ..., "version": ..., "model": state_dict, ...}``.

    Files are read with ``torch.load(..., weights_only=True)``: a file holding anything else than tensors and
    plain containers raises :class:`UnsafeCheckpointError` and is never unpickled in full. A file that is
    damaged (truncated, bytes changed: a ``.pt`` archive's checksums are checked), of another kind, or a
    checkpoint of a newer format raises :class:`CheckpointError` naming the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        problem = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"No checkpoint at {path}: the path {problem}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes), not a checkpoint: its saving did not finish or it was "
                              f"cut; save it again")
    if _is_safetensors(path):
        with reading_safetensors(path, "it"):
            model_state = safetensors.torch.load_file(path, device=str(map_location))
        return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": model_state}
    return _as_checkpoint(_unpickle(path, map_location), path)


def load_weights(model: torch.nn.Module, path: str | os.PathLike, strict: bool = True,
                 map_location: str | torch.device = "cpu") -> _IncompatibleKeys:
    """Loads the model state of the checkpoint at ``path`` into ``model`` and returns the missing and
    unexpected keys (as ``model.load_state_dict`` does).

    Keys saved from a ``DistributedDataParallel`` (``module.``) or ``torch.compile`` (``_orig_mod.``) wrapper
    load into the bare model.
    """
    model_state = load_checkpoint(path, map_location=map_location)["model"]
    _strip_wrapper_prefixes(model_state, model.state_dict().keys())
    try:
        return model.load_state_dict(model_state, strict=strict)
    except RuntimeError as error:
        raise ValueError(f"{path}: {error}") from None


def read_json(path: str | os.PathLike, what: str) -> Any:
    """The data of the saved JSON file at ``path``; a file that is not UTF-8 JSON raises a
    :class:`CheckpointError` naming it and telling to save ``what`` (e.g. ``"the pipeline"``) again."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as error:  # invalid JSON or UTF-8, or nesting too deep to read
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise CheckpointError(f"{path} is not valid JSON ({reason}): the file is damaged, save {what} "
                              f"again") from None


def _is_safetensors(path: Path) -> bool:
    return path.suffix.lower() == SAFETENSORS_SUFFIX


def _state_dict_problem(state: Any) -> str | None:
    """What keeps ``state`` from being a state dict (not a mapping, or its first entry that is not a
    string name mapped to a tensor), if anything."""
    if not isinstance(state, Mapping):
        return f"it is a {type(state).__name__}, not a mapping"
    for key, value in state.items():
        if not isinstance(key, str):
            return f"the key {key!r} is of type {type(key).__name__}, not a string name"
        if not isinstance(value, Tensor):
            return f"the entry {key!r} is of type {type(value).__name__}, not a tensor"
    return None


def _strip_wrapper_prefixes(model_state: dict[str, Tensor], model_keys: Collection[str]) -> None:
    """Removes, in place, a wrapper prefix that every key of ``model_state`` has and no key of the model has."""
    stripped = True
    while stripped:  # repeated, as a compiled DDP model nests both prefixes
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if (model_state and all(key.startswith(prefix) for key in model_state)
                    and not any(key.startswith(prefix) for key in model_keys)):
                consume_prefix_in_state_dict_if_present(model_state, prefix)
                stripped = True


def _unshared(model_state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Contiguous tensors with one storage each, as safetensors refuses views and tensors sharing memory
    (tied weights)."""
    seen_storages = set()
    tensors = {}
    for key, tensor in model_state.items():
        tensor = tensor.detach()
        storage = (tensor.device, tensor.untyped_storage().data_ptr())
        if storage in seen_storages or not tensor.is_contiguous():
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        seen_storages.add(storage)
        tensors[key] = tensor
    return tensors


@contextmanager
def reading_safetensors(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Turns an error of safetensors while reading the file at ``path`` into a :class:`CheckpointError`
    naming it and telling to save ``what`` (e.g. ``"the index"``) again."""
    try:
        yield
    except safetensors.SafetensorError as error:
        raise CheckpointError(f"{os.fspath(path)} is not a readable safetensors file ({error}): it is truncated, "
                              f"damaged or of another kind; save {what} again") from None


def _unpickle(path: Path, map_location: str | torch.device) -> Any:
    """The object ``torch.load(path, weights_only=True)`` reads, after checking a zip archive's structure
    and checksums; whatever the safe unpickler refuses or cannot read raises a :class:`CheckpointError`
    (an :class:`UnsafeCheckpointError` when the file names a Python object to build)."""
    with open(path, "rb") as handle:
        archive = handle.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
    if archive:
        _check_archive(path)
    kind = ("a zip archive but not one torch.save wrote" if archive
            else "not a checkpoint: not the zip archive torch.save writes (nor an older torch.save file)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        detail = _refusal_detail(error)
        refused = _REFUSED_GLOBAL.search(detail)
        if refused is None:
            raise CheckpointError(f"{path} is {kind}, or it is damaged ({detail}); save it again") from None
        raise UnsafeCheckpointError(
            f"Refused to load {path}: it holds an object that is not a tensor or plain container "
            f"({refused.group(1)}). graphfuse checkpoints hold only tensors and plain containers, and unpickling "
            f"anything else can run code, so this file will not be loaded; where the weights were made, save them "
            f"with graphfuse.checkpoint.save_checkpoint (or as safetensors)") from None
    except _UNREADABLE as error:
        if "map_location" in str(error):  # a device this machine lacks: the file is fine
            raise
        reason = _first_sentence(str(error))
        if isinstance(error, LookupError | AssertionError) or not reason:  # their messages are bare values
            reason = f"{type(error).__name__} {reason}".rstrip()
        raise CheckpointError(f"{path} is {kind}, or it is truncated or damaged ({reason}); save it again") from None


def _check_archive(path: Path) -> None:
    """Checks the zip archive at ``path`` is whole, every entry matches its CRC-32 checksum (which
    ``torch.load`` does not check) and none is marked as a folder (which ``torch.load`` reads as empty), so
    that changed bytes are found rather than loaded as weights."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
            folders = [info.filename for info in archive.infolist() if info.external_attr & _DOS_FOLDER]
    # RuntimeError: an entry marked as encrypted; OSError: offsets out of the file
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, RuntimeError, OSError) as error:
        raise CheckpointError(f"{path} starts as a zip archive (torch.save's format) but is not a whole one "
                              f"({error}): it is truncated or damaged; save it again") from None
    if damaged is not None or folders:
        problem = "does not match its checksum" if damaged is not None else "is marked as a folder"
        raise CheckpointError(f"{path} is damaged: its entry '{damaged or folders[0]}' {problem} (bytes of the file "
                              f"changed after it was saved); save it again") from None


def _refusal_detail(error: pickle.UnpicklingError) -> str:
    """The first sentence of the weights-only unpickler's own error, e.g. the GLOBAL it refused, without
    torch's advice around it."""
    return _first_sentence(str(error).split("WeightsUnpickler error:")[-1]) or "refused by the safe unpickler"


def _first_sentence(message: str) -> str:
    message = message.strip()
    return message.splitlines()[0].split(". ")[0].rstrip(".") if message else ""


def _as_checkpoint(content: Any, path: Path) -> dict[str, Any]:
    if isinstance(content, Mapping) and "model" in content:
        checkpoint = dict(content)
    elif isinstance(content, Mapping) and all(isinstance(value, Tensor) for value in content.values()):
        checkpoint = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": content}
    else:
        found = (f"a dict without a 'model' entry, in which {_state_dict_problem(content)}"
                 if isinstance(content, Mapping) else f"a {type(content).__name__}")
        raise CheckpointError(f"{path} holds {found}; expected a graphfuse checkpoint (a dict with a 'model' state "
                              f"dict, as save_checkpoint writes) or a bare state dict of tensors "
                              f"(as torch.save(model.state_dict()) writes)")
    _check_format(checkpoint, path)
    problem = _state_dict_problem(checkpoint["model"])
    if problem:
        raise CheckpointError(f"{path}: the model state is not a state dict: {problem}; expected a mapping from "
                              f"names to tensors")
    return checkpoint


def _check_format(checkpoint: Mapping[str, Any], path: Path) -> None:
    """Refuses a ``"format"`` marker other than graphfuse's, and a graphfuse checkpoint whose
    ``"version"`` is not a version this graphfuse reads. A dict with no marker (another tool's) passes."""
    if "format" not in checkpoint:
        return
    marker, version = checkpoint["format"], checkpoint.get("version")
    if marker != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is marked as {short_repr(marker, 40)}, not as a graphfuse checkpoint "
                              f"({CHECKPOINT_FORMAT!r}); load it with the tool that wrote it")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path} is a graphfuse checkpoint with no valid 'version' (got "
                              f"{short_repr(version, 40)}, expected a whole number from 1): the file is damaged, save "
                              f"it again")
    if version > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} is a version {version} graphfuse checkpoint; this graphfuse reads up to "
                              f"version {CHECKPOINT_VERSION}, upgrade graphfuse to load it")
