"""Input checks shared across the package; each raises an error naming what was wrong and the fix."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


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
    if value not in choices:
        raise ValueError(f"{what} must be one of {tuple(choices)}, got {value!r}")


def as_tensor(value: Any, owner: str, expected: str) -> Tensor:
    """``value`` as a tensor (arrays and nested lists convert), else a TypeError naming ``owner``."""
    if isinstance(value, Tensor):
        return value
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{owner} received {type(value).__name__}; expected {expected}") from None


def check_finite(value: Tensor, modality: str, what: str) -> None:
    if not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(
            f"Modality '{modality}' received {what} with {bad} NaN/Inf value(s); clean or "
            f"impute them before building the graph")


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
