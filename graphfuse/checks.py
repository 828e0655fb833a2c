"""Input checks shared across the package; each raises an error naming what was wrong and the fix."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from graphfuse.config import short_repr


def check_int(value: Any, what: str, minimum: int = 1) -> None:
    """``what`` names the argument, e.g. ``"ImageModality 'patch_size'"``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")


def check_probability(value: Any, what: str) -> float:
    """``value`` as a probability in ``[0, 1)``; ``what`` names the argument in the error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{what} is a probability in [0, 1), got {value!r}")
    return float(value)


def check_choice(value: Any, choices: Sequence[Any], what: str) -> None:
    """``value`` must be one of ``choices`` and of its type: ``4.0`` or ``True`` is not the choice ``4`` or ``1``."""
    if not any(_same_kind(value, choice) and value == choice for choice in choices):
        raise ValueError(f"{what} must be one of {tuple(choices)}, got {short_repr(value)}")


def _same_kind(value: Any, choice: Any) -> bool:
    return (isinstance(value, bool) == isinstance(choice, bool)
            and (isinstance(value, type(choice)) or isinstance(choice, type(value))))


def check_bool(value: Any, what: str) -> bool:
    """``value`` as a switch: only ``True`` or ``False`` (not ``0``, ``1`` or ``"false"``)."""
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be True or False, got {short_repr(value)}")
    return value


def check_str(value: Any, what: str) -> str:
    """``value`` as a name: a non-empty string."""
    if not isinstance(value, str) or not value:
        raise TypeError(f"{what} must be a non-empty string, got {short_repr(value)}")
    return value


def check_names(value: Any, what: str) -> tuple[str, ...]:
    """``value`` as a non-empty list or tuple of names (non-empty strings), returned as a tuple."""
    if not isinstance(value, (list, tuple)) or not value:
        raise TypeError(f"{what} must be a non-empty list of names (strings), got {short_repr(value)}")
    for i, name in enumerate(value):
        check_str(name, f"{what}[{i}]")
    return tuple(value)


def check_shape(value: Any, what: str) -> tuple[int, ...]:
    """``value`` as a trailing tensor shape: a list or tuple of integers >= 1 (possibly empty), as a tuple."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{what} must be a list or tuple of sizes, got {short_repr(value)}")
    for i, size in enumerate(value):
        check_int(size, f"{what}[{i}]")
    return tuple(value)


def as_tensor(value: Any, owner: str, expected: str) -> Tensor:
    """``value`` as a tensor (arrays and nested lists convert), else a TypeError naming ``owner``."""
    if isinstance(value, Tensor):
        return value
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{owner} received {type(value).__name__}; expected {expected}") from None


def check_finite(value: Tensor, modality: str, what: str) -> None:
    """Raises, naming ``modality`` and ``what``, when ``value`` holds a NaN or an infinity."""
    # A finite sum means no NaN or inf (either would make it NaN or inf): one reduction, no temporaries,
    # where isfinite(value).all() runs several kernels; only a sum that overflows (or a NaN) looks closer.
    if not value.is_floating_point() or math.isfinite(float(value.sum())):
        return
    if not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(
            f"Modality '{modality}' received {what} with {bad} NaN/Inf value(s); clean or "
            f"impute them before building the graph")


def to_float32(value: Tensor, modality: str, what: str) -> Tensor:
    """Floating ``value`` as ``float32``: NaN/Inf, and finite values beyond float32's range (which the
    cast would turn into inf), raise an error naming ``modality``."""
    check_finite(value, modality, what)
    converted = value.float()
    if converted is not value and not bool(torch.isfinite(converted).all()):
        raise ValueError(
            f"Modality '{modality}' received {what} as large as {float(value.abs().max()):.3g}, beyond float32's "
            f"range (+-{torch.finfo(torch.float32).max:.3g}); rescale them before building the graph")
    return converted


def check_edge_index(edge_index: Any, num_src: int, num_dst: int, what: str) -> None:
    if (not isinstance(edge_index, Tensor) or edge_index.dtype != torch.long
            or edge_index.dim() != 2 or edge_index.size(0) != 2):
        raise TypeError(
            f"The {what} must be a torch.long tensor of shape [2, num_edges]; received "
            f"{type(edge_index).__name__} of shape {tuple(getattr(edge_index, 'shape', ()))} "
            f"and dtype {getattr(edge_index, 'dtype', None)}")
    if edge_index.numel() == 0:
        return
    if int(edge_index.min()) < 0 or int(edge_index[0].max()) >= num_src or int(edge_index[1].max()) >= num_dst:
        raise ValueError(
            f"The {what} index nodes out of range: sources must lie in [0, {num_src}) and "
            f"destinations in [0, {num_dst})")


def check_number(value: Any, what: str, minimum: float = 0.0) -> float:
    """``value`` as a float ``>= minimum`` (NaN is refused); ``what`` names the argument in the error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:
        raise ValueError(f"{what} must be a number >= {minimum:g}, got {value!r}")
    return float(value)


def check_layers(owner: str, hidden_channels: Any, num_layers: Any, heads: Any, dropout: Any,
                 ffn_ratio: Any = None, split_heads: bool = True) -> None:
    """The size options every model shares, checked before any layer is built; ``owner`` names the
    model. With ``split_heads``, the attention splits ``hidden_channels`` over ``heads``."""
    check_int(hidden_channels, f"{owner} 'hidden_channels'")
    check_int(num_layers, f"{owner} 'num_layers'")
    check_int(heads, f"{owner} 'heads'")
    check_probability(dropout, f"{owner} 'dropout'")
    if ffn_ratio is not None:
        check_number(ffn_ratio, f"{owner} 'ffn_ratio'")
    if split_heads and hidden_channels % heads:
        raise ValueError(f"{owner} splits hidden_channels={hidden_channels} over heads={heads}; pick a number of "
                         f"heads that divides 'hidden_channels'")


def check_outputs(owner: str, task: str, num_classes: Any, out_channels: Any,
                  head_hidden_channels: Any = None) -> None:
    """The head's sizes: ``num_classes`` for the classification tasks, ``out_channels`` for
    regression, and the optional ``head_hidden_channels``."""
    if task == "regression":
        check_int(out_channels, f"{owner} 'out_channels'")
    elif num_classes is None:
        raise ValueError(f"{owner} with task={task!r} needs 'num_classes'")
    else:
        check_int(num_classes, f"{owner} 'num_classes'")
    if head_hidden_channels is not None:
        check_int(head_hidden_channels, f"{owner} 'head_hidden_channels'")
