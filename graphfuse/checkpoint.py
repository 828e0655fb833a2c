"""Saving and loading checkpoints without ever running code stored in a file.

A ``.pt`` checkpoint holds the model state plus any training state (optimizer, scheduler, counters, RNG
states) and is read only through ``torch.load(..., weights_only=True)``; a ``.safetensors`` file holds the
model state alone. Writes are atomic: a failed save never damages an existing checkpoint.
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import safetensors
import safetensors.torch
import torch
from torch import Tensor
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from graphfuse.io import atomic_replace

if TYPE_CHECKING:
    from torch.nn.modules.module import _IncompatibleKeys

CHECKPOINT_FORMAT = "graphfuse-checkpoint"
CHECKPOINT_VERSION = 1
SAFETENSORS_SUFFIX = ".safetensors"
# Prefixes that wrappers put in front of every key: DistributedDataParallel and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


class UnsafeCheckpointError(pickle.UnpicklingError):
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
    plain containers raises :class:`UnsafeCheckpointError` and is never unpickled in full.
    """
    path = Path(path)
    if not path.is_file():
        problem = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"No checkpoint at {path}: the path {problem}")
    if _is_safetensors(path):
        try:
            model_state = safetensors.torch.load_file(path, device=str(map_location))
        except safetensors.SafetensorError as error:
            raise ValueError(f"{path} is not a readable safetensors file ({error}); it may be truncated or "
                             f"corrupt, save it again") from None
        return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": model_state}
    try:
        content = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(
            f"Refused to load {path}: it holds an object that is not a tensor or plain container "
            f"({_refusal_detail(error)}). graphfuse checkpoints hold only tensors and plain containers, and "
            f"unpickling anything else can run code, so this file will not be loaded. If you trust its source, "
            f"load it yourself with torch.load({str(path)!r}, weights_only=False)") from None
    except (RuntimeError, EOFError) as error:
        reason = _first_sentence(str(error)) or "the file ended early"
        raise ValueError(f"{path} could not be read as a checkpoint ({reason}); if it is truncated or corrupt, "
                         f"save it again") from None
    return _as_checkpoint(content, path)


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
        raise ValueError(f"{path} holds {found}; expected a graphfuse checkpoint (a dict with a 'model' state "
                         f"dict, as save_checkpoint writes) or a bare state dict of tensors "
                         f"(as torch.save(model.state_dict()) writes)")
    version = checkpoint.get("version")
    if checkpoint.get("format") == CHECKPOINT_FORMAT and isinstance(version, int) and version > CHECKPOINT_VERSION:
        raise ValueError(f"{path} is a version {version} graphfuse checkpoint; this graphfuse reads up to version "
                         f"{CHECKPOINT_VERSION}, upgrade graphfuse to load it")
    problem = _state_dict_problem(checkpoint["model"])
    if problem:
        raise ValueError(f"{path}: the model state is not a state dict: {problem}; expected a mapping from names "
                         f"to tensors")
    return checkpoint
