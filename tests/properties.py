"""What the property-based tests (hypothesis) share: the one rule for errors, raw tensors of any
shape, dtype and magnitude, and random builders with random samples for them.

A property test calls the library on generated input and accepts exactly two outcomes: a correct
result, or a documented error, a ``ValueError`` / ``TypeError`` whose message names what was wrong
(the modality, the layer). Anything else (``IndexError``, ``KeyError``, ``ZeroDivisionError``, a raw
torch ``RuntimeError``, a bare torch ``ValueError`` that names nothing) fails the test.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy
import torch
from hypothesis import strategies as st

from graphfuse.data import (
    AudioModality,
    CrossEdges,
    CrossModalStrategy,
    FeatureModality,
    GraphBuilder,
    ImageModality,
    Modality,
    RandomBipartite,
    StridedBipartite,
    TemporalAlignment,
    TextModality,
    Tokenizer,
    VirtualNodes,
)

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
    if specials and dtype.is_floating_point and tensor.numel() and draw(ONE_IN_FOUR):
        tensor.view(-1)[draw(st.integers(0, tensor.numel() - 1))] = draw(st.sampled_from([math.nan, math.inf]))
    if dtype != torch.bfloat16 and draw(st.booleans()):
        return numpy.asarray(tensor)
    return tensor


def rarely(usual: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
    """``usual`` three times in four, ``odd`` the fourth: hostile input that does not crowd out the rest."""
    return st.one_of(usual, usual, usual, odd)


ONE_IN_FOUR = rarely(st.just(False), st.just(True))


def lengths(short: int = 24, long: tuple[int, int] = (1_000, 20_000)) -> st.SearchStrategy[int]:
    """A size: mostly small (0 and 1 included), sometimes long."""
    return st.one_of(st.integers(0, short), st.integers(*long))


# --- builders and samples ---------------------------------------------------------------------------

TOKENIZER = Tokenizer.from_corpus(["the cat sat on the mat", "a red square, a blue circle!"])
WORDS = ["the", "cat", "sat", "on", "mat", "red", "zebra", "!"]
SAMPLE_RATE = 16000
STRATEGIES = ("full", "temporal", "strided", "random", None)


@st.composite
def modalities(draw) -> dict[str, Modality]:
    """One to four modalities, every one timed (so that any pair may be aligned in time)."""
    window, self_loops = draw(st.integers(1, 3)), draw(st.booleans())
    pool = {
        "text": lambda: TextModality(TOKENIZER, window=window, self_loops=self_loops, spans=True),
        "image": lambda: ImageModality(patch_size=2, channels=1, neighbourhood=draw(st.sampled_from([4, 8])),
                                       self_loops=self_loops),
        "audio": lambda: AudioModality(SAMPLE_RATE, n_mels=4, window=window, self_loops=self_loops),
        "feat": lambda: FeatureModality(3, timed=True, edges=draw(st.sampled_from([None, "chain"])), window=window),
    }
    names = draw(st.lists(st.sampled_from(list(pool)), min_size=1, max_size=4, unique=True))
    return {name: pool[name]() for name in names}


def _strategy(draw, src: str, dst: str) -> CrossModalStrategy | str | None:
    kind = draw(st.sampled_from(STRATEGIES))
    if kind == "temporal" and "image" not in (src, dst):
        return TemporalAlignment(window=draw(st.sampled_from([0.0, 0.01, 1.0])))
    if kind in ("strided", "random"):
        budget = draw(st.integers(1, 4))
        return StridedBipartite(budget) if kind == "strided" else RandomBipartite(budget, seed=draw(st.integers(0, 9)))
    return None if kind is None else "full"


@st.composite
def builders(draw, capped: bool = True, cache_bytes: tuple[int, ...] = (0, 64, 1024, 256 << 20)) -> GraphBuilder:
    """A builder over :func:`modalities` with random cross-modal strategies between some pairs, maybe
    virtual nodes, a small template cache and, when ``capped``, sometimes a tight edge cap."""
    chosen = draw(modalities())
    cross: list = []
    for src, dst in itertools.combinations(chosen, 2):
        strategy = _strategy(draw, src, dst)
        if strategy is not None:
            cross.append(CrossEdges(src, dst, strategy))
    if draw(st.booleans()):
        cross.append(VirtualNodes(count=draw(st.integers(1, 3))))
    cap = draw(rarely(st.just(None), st.integers(1, 300))) if capped else None
    cache = draw(st.sampled_from(cache_bytes))
    return GraphBuilder(chosen, cross, max_edges_per_sample=cap, template_cache_bytes=cache)


@st.composite
def raw_inputs(draw, modality: str) -> Any:
    """A small raw input of ``modality`` (one-node inputs included)."""
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 16)))
    if modality == "text":
        words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=6))
        if draw(st.booleans()):
            return " ".join(words)
        starts = sorted(draw(st.lists(st.floats(0, 0.2), min_size=len(words), max_size=len(words))))
        return {"tokens": words, "spans": [[start, start + 0.01] for start in starts]}
    if modality == "image":
        return torch.rand(draw(st.integers(1, 7)), draw(st.integers(1, 7)), generator=generator)
    if modality == "audio":
        return 0.1 * torch.randn(draw(st.integers(1, 3000)), generator=generator)
    rows = draw(st.integers(1, 5))
    start = torch.rand(rows, generator=generator).sort().values * 0.2
    return {"x": torch.randn(rows, 3, generator=generator), "time": torch.stack([start, start + 0.02], 1)}


@st.composite
def samples(draw, builder: GraphBuilder, empty: bool = True) -> dict[str, Any]:
    """A sample of ``builder``: each modality present or not (with ``empty``, rarely none at all), as raw
    input or, sometimes, as the node set it featurises to."""
    sample = {}
    for name, modality in builder.modalities.items():
        if draw(st.booleans()):
            raw = draw(raw_inputs(name))
            sample[name] = modality.featurize(raw) if draw(ONE_IN_FOUR) else raw
    if not sample and not (empty and draw(ONE_IN_FOUR)):
        name = draw(st.sampled_from(list(builder.modalities)))
        sample[name] = draw(raw_inputs(name))
    return sample
