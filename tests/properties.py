"""What the property-based tests (hypothesis) share: the one rule for errors, and raw tensors of any
shape, dtype and magnitude.

A property test calls the library on generated input and accepts exactly two outcomes: a correct
result, or a documented error, a ``ValueError`` / ``TypeError`` whose message names what was wrong
(the modality, the layer). Anything else (``IndexError``, ``KeyError``, ``ZeroDivisionError``, a raw
torch ``RuntimeError``, a bare torch ``ValueError`` that names nothing) fails the test.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy
import torch
from hypothesis import strategies as st

DOCUMENTED = (ValueError, TypeError)
# Every dtype a caller might hand over, the floating ones twice as often; bfloat16 has no numpy twin,
# so it comes as a tensor.
FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool, *FLOATS, *FLOATS)
# Magnitudes from subnormal to past float32's range (3.4e38): what a float64 input may hold.
SCALES = (0.0, 1e-45, 1e-30, 1e-5, 1.0, 1e5, 1e15, 1e30, 1e300)


def outcome(call: Callable[..., Any], *args: Any, names: tuple[str, ...] = ()) -> tuple[Any, Exception | None]:
    """``(call(*args), None)``, or ``(None, error)`` for a documented error whose message holds every
    string of ``names``; any other exception propagates (and fails the test)."""
    try:
        return call(*args), None
    except DOCUMENTED as error:
        if isinstance(error, UnicodeError) or not all(name in str(error) for name in names):
            raise AssertionError(f"{type(error).__name__} that does not name {names}: {error}") from error
        return None, error


def assert_finite(tensor: torch.Tensor, what: str) -> None:
    if tensor.is_floating_point():
        bad = int((~torch.isfinite(tensor)).sum())
        assert bad == 0, f"{what} has {bad} NaN/Inf value(s)"


@st.composite
def raw_tensors(draw, shape: tuple[int, ...], dtypes=DTYPES, scales=SCALES, specials: bool = True):
    """A tensor, or a numpy array where its dtype has one, of ``shape``: random values of a drawn dtype
    and magnitude (cast, so a float16 may overflow to inf), sometimes with a NaN or inf planted."""
    dtype = draw(st.sampled_from(dtypes))
    scale = draw(st.sampled_from(scales))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 16)))
    values = torch.randn(shape, generator=generator, dtype=torch.float64) * scale
    if dtype == torch.bool:
        tensor = values > 0
    elif dtype.is_floating_point:
        tensor = values.to(dtype)
    else:
        info = torch.iinfo(dtype)
        tensor = values.round().clamp(info.min, info.max).to(dtype)
    if specials and dtype.is_floating_point and tensor.numel() and draw(rarely(st.just(False), st.just(True))):
        tensor.view(-1)[draw(st.integers(0, tensor.numel() - 1))] = draw(st.sampled_from([math.nan, math.inf]))
    if dtype != torch.bfloat16 and draw(st.booleans()):
        return numpy.asarray(tensor)
    return tensor


def rarely(usual: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
    """``usual`` three times in four, ``odd`` the fourth: hostile input that does not crowd out the rest."""
    return st.one_of(usual, usual, usual, odd)


def lengths(short: int = 24, long: tuple[int, int] = (1_000, 20_000)) -> st.SearchStrategy[int]:
    """A size: mostly small (0 and 1 included), sometimes long."""
    return st.one_of(st.integers(0, short), st.integers(*long))
