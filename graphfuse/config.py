"""Settings as JSON data: an object's constructor arguments read back off it, checked to be plain JSON,
and the asset files beside them (saved pipelines and builders hold nothing else, never a pickle)."""
from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

_SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def check_json(value: Any, what: str) -> None:
    """Raises a ``TypeError`` naming ``what`` (and the entry inside it) unless ``value`` is plain JSON:
    ``None``, a bool, an int, a finite float, a string, or lists / tuples and string-keyed dicts of them."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise TypeError(f"{what} is {value}, which JSON cannot hold; give a finite number")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_json(item, f"{what}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{what} has the key {key!r} of type {type(key).__name__}; JSON keys are strings")
            check_json(item, f"{what}[{key!r}]")
        return
    raise TypeError(f"{what} is a {type(value).__name__} ({short_repr(value)}), which cannot be saved as JSON; "
                    f"settings are saved as plain values (numbers, strings, lists, dicts) and functions by registered "
                    f"name")


def as_json(value: Any, what: str) -> Any:
    """``value`` checked by :func:`check_json` and as it reads back from JSON (tuples become lists)."""
    check_json(value, what)
    return json.loads(json.dumps(value))


def constructor_config(obj: Any, owner: str) -> dict[str, Any]:
    """The arguments of ``type(obj).__init__`` read back from the attributes of the same names: the
    default ``get_config`` of objects whose constructor stores each argument as is. A parameter with no
    such attribute raises an error telling ``owner`` to override ``get_config``."""
    config = {}
    for name, parameter in inspect.signature(type(obj).__init__).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if not hasattr(obj, name):
            raise TypeError(f"{owner} does not keep its argument '{name}' as an attribute, so its settings cannot be "
                            f"read back; override get_config() (and from_config() if needed) to save it")
        config[name] = getattr(obj, name)
    return config


def asset_path(folder: str | Path, name: Any, what: str) -> Path:
    """``folder / name`` for a file name read from a config, refused unless it is a plain file name (no
    folders, no ``..``), so that a config can never point outside its folder."""
    if not isinstance(name, str) or not _SAFE_FILE_NAME.fullmatch(name):
        raise ValueError(f"{what} names the file {name!r}, which is not a plain file name inside the folder; the "
                         f"config is damaged or was edited by hand")
    return Path(folder) / name


def file_stem(name: str) -> str:
    """``name`` made into a safe file name part (what :func:`asset_path` accepts)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".-")
    return stem or "_"


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
