"""Seeded synthetic tri-modal samples of exact shapes, for benchmarks and smoke tests.

The content is random (words from a fixed list, noise images, tones in noise): it exercises
graph construction at a chosen size, it carries no learnable signal.
"""
from __future__ import annotations

import math

import torch

from graphfuse.checks import check_int

WORDS = (
    "zero one two three four five six seven eight nine red green blue yellow black white "
    "square circle triangle star left right top bottom middle above below near far small large the a"
).split()


def frames_to_samples(frames: int, sample_rate: int, win_length: float = 0.025, hop_length: float = 0.010) -> int:
    """Waveform length giving exactly ``frames`` frames with :class:`~graphfuse.AudioModality`'s framing."""
    check_int(frames, "frames_to_samples 'frames'")
    return round(win_length * sample_rate) + (frames - 1) * round(hop_length * sample_rate)


def synthetic_samples(num_samples: int, tokens: int = 32, grid: int = 7, patch_size: int = 4, channels: int = 3,
                      frames: int = 50, sample_rate: int = 16000, seed: int = 0) -> list[dict]:
    """``num_samples`` raw samples ``{"text": str, "image": uint8 [C, H, W], "audio": (waveform, rate)}``.

    Each has exactly ``tokens`` words, a ``grid`` x ``grid`` patch grid at ``patch_size`` and a
    waveform of ``frames`` frames.
    """
    for name, value in (("num_samples", num_samples), ("tokens", tokens), ("grid", grid),
                        ("patch_size", patch_size), ("channels", channels)):
        check_int(value, f"synthetic_samples '{name}'")
    generator = torch.Generator().manual_seed(seed)
    side = grid * patch_size
    length = frames_to_samples(frames, sample_rate)
    seconds = torch.arange(length) / sample_rate
    samples = []
    for _ in range(num_samples):
        words = torch.randint(len(WORDS), (tokens,), generator=generator).tolist()
        image = torch.randint(0, 256, (channels, side, side), dtype=torch.uint8, generator=generator)
        pitch = 100.0 + 900.0 * float(torch.rand((), generator=generator))
        tone = torch.sin(2 * math.pi * pitch * seconds)
        noise = 0.1 * torch.randn(length, generator=generator)
        samples.append({
            "text": " ".join(WORDS[i] for i in words),
            "image": image,
            "audio": ((0.5 * tone + noise).float(), sample_rate),
        })
    return samples
