"""Side-by-side timing: methods measured in interleaved rounds, and the allocator they share.

glibc returns large freed blocks to the kernel at once, so a loop that allocates a few MB per
call pays page faults every call and its time says more about the kernel than the code.
:func:`configure_allocator` keeps freed memory in the process instead (``mallopt``), for every
method of the run alike; ``"default"`` leaves glibc as it is, to compare.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import statistics
import time
from collections.abc import Callable, Mapping

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
ALLOCATORS = ("tuned", "default")


def configure_allocator(mode: str) -> str:
    """Applies ``mode`` (``"tuned"`` or ``"default"``) and returns a description for the results."""
    if mode not in ALLOCATORS:
        raise ValueError(f"allocator mode must be one of {ALLOCATORS}, got {mode!r}")
    if mode == "default":
        return "glibc defaults"
    library = ctypes.util.find_library("c")
    libc = ctypes.CDLL(library) if library else None
    if libc is None or not hasattr(libc, "mallopt"):
        logger.warning("mallopt is not available (not glibc?); the allocator is left as it is")
        return "unchanged (no mallopt)"
    accepted = (libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(32 << 20)) == 1
                and libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(1 << 30)) == 1)
    if not accepted:
        logger.warning("mallopt refused the settings; the allocator is left as it is")
        return "unchanged (mallopt refused)"
    return "glibc, mmap threshold 32 MiB, trim threshold 1 GiB"


def return_freed_memory() -> bool:
    """Makes glibc hand every allocation above 64 KiB back to the kernel when freed (fixed mmap and
    trim thresholds), so the resident set follows live memory: for peak-memory probes only."""
    library = ctypes.util.find_library("c")
    libc = ctypes.CDLL(library) if library else None
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return (libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(64 << 10)) == 1
            and libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(64 << 10)) == 1)


def _calls_per_measurement(fn: Callable[[], object], min_seconds: float) -> int:
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    return max(1, int(min_seconds / max(elapsed, 1e-9)))


def interleaved_seconds(methods: Mapping[str, Callable[[], object]], rounds: int,
                        min_seconds: float = 0.05) -> dict[str, float]:
    """Median seconds per call of each method; every round measures every method in turn, so
    machine noise falls on all of them alike. A measurement repeats a call until it lasts
    about ``min_seconds``."""
    calls = {}
    for name, fn in methods.items():
        fn()  # warm-up: caches, lazy imports, allocator pools
        calls[name] = _calls_per_measurement(fn, min_seconds)
    samples: dict[str, list] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, fn in methods.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / calls[name])
    return {name: statistics.median(values) for name, values in samples.items()}
