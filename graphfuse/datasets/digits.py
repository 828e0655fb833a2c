"""The embedded tri-modal data: real handwritten digits, synthesised speech and text.

Sources (all installed with the package, nothing downloaded):

* images: scikit-learn's ``load_digits`` (1,797 8x8 handwritten digits, 0-16 grey levels; the UCI
  "Optical Recognition of Handwritten Digits" test set, shipped inside scikit-learn, BSD-3);
* speech: espeak-ng (GPL-3, via the ``espeakng-loader`` wheel) speaking digit and caption words in
  20 voices at varied rate, pitch and pitch range, then mixed with white noise;
* text: generated captions and word markers.

Two datasets:

* :func:`spoken_sequence_digits` (classification, 10 classes): the speech is three different
  digits spoken in a row with random pauses; the text has one marker word per spoken word, with its
  time span, ``"keep"`` on one word and ``"skip"`` on the others; the image is a handwritten digit
  with a random half blanked out. The label is the kept spoken digit, which the image also shows.
  Alone, the speech gives three candidates, the text only which word (not what it says) and the
  half image a blurred guess: only joining the marker to the frames of its word gives the answer.
* :func:`digit_canvases` (retrieval): 16x16 canvases with two or three digits in distinct
  quadrants, captioned as text and as speech in reading order, one word per quadrant ("seven blank
  blank three": a 7 at the top left, a 3 at the bottom right). Layouts come in groups with the
  same digits in different quadrants, so that matching a caption to its canvas needs each word
  bound to its quadrant, not only the digits.

Every split draws from its own handwritten images and its own voices' variations, and the
retrieval splits hold disjoint layouts. Word clips are synthesised once per voice setting and
cached (``$GRAPHFUSE_CACHE``, default ``~/.cache/graphfuse``); everything else is regenerated from
the seed in seconds. The clips are synthesised in a fresh process, in a fixed order, with
espeak-ng's random generator seeded, so that every machine with the same espeak-ng build gets the
same clips (see :mod:`graphfuse.datasets.speech`).
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from graphfuse.datasets.speech import SAMPLE_RATE, VOICES, Voice, downsample, synthesize_all
from graphfuse.io import atomic_replace

#: Speech rate of the data (espeak-ng's 22,050 Hz halved).
AUDIO_RATE = SAMPLE_RATE // 2
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
CAPTION_WORDS = DIGIT_WORDS + ("blank",)
MARKERS = ("skip", "keep")
#: Handwritten images per split (of load_digits' 1,797), split by index after one seeded shuffle.
IMAGE_SPLITS = {"train": 0.6, "val": 0.15, "test": 0.25}
_CACHE_VERSION = 2


def cache_dir() -> Path:
    """Where synthesised speech is cached: ``$GRAPHFUSE_CACHE`` or ``~/.cache/graphfuse``."""
    return Path(os.environ.get("GRAPHFUSE_CACHE", Path.home() / ".cache" / "graphfuse"))


def check_split(split: str) -> None:
    if split not in IMAGE_SPLITS:
        raise ValueError(f"split must be one of {tuple(IMAGE_SPLITS)}, got {split!r}")


@lru_cache(maxsize=1)
def _digit_images() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(images))
    bounds = np.cumsum([0] + [round(f * len(images)) for f in IMAGE_SPLITS.values()])
    bounds[-1] = len(images)
    splits = {name: order[bounds[i]:bounds[i + 1]] for i, name in enumerate(IMAGE_SPLITS)}
    return images, digits.target, splits


def digit_images(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The handwritten ``[N, 8, 8]`` images (in [0, 1]) and labels of one split of ``load_digits``."""
    check_split(split)
    images, labels, splits = _digit_images()
    index = splits[split]
    return torch.from_numpy(images[index]), torch.from_numpy(labels[index])


def _voices(count: int = 60) -> list[Voice]:
    """A fixed set of voice settings: each espeak-ng voice at three rates and pitches."""
    rng = np.random.default_rng(1)
    return [Voice(VOICES[i % len(VOICES)], int(rng.integers(170, 260)), int(rng.integers(20, 80)),
                  int(rng.integers(20, 90))) for i in range(count)]


def _trim(waveform: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    loud = np.flatnonzero(np.abs(waveform) > threshold)
    return waveform[loud[0]:loud[-1] + 1] if loud.size else waveform


def spoken_clips(words: tuple[str, ...], path: Path) -> dict[str, list[np.ndarray]]:
    """Every text of ``words`` spoken in every voice setting of :func:`_voices`, trimmed of silence,
    at :data:`AUDIO_RATE`: ``{word: [clip per voice]}``. Synthesised once in a fresh process (see
    :func:`~graphfuse.datasets.speech.synthesize_all`), then cached at ``path``; a cache made for
    other words or voices is synthesised again and replaced."""
    voices = _voices()
    if path.is_file():
        stored = torch.load(path, weights_only=True)
        if stored["words"] == list(words) and stored["voices"] == [list(vars(v).values()) for v in voices]:
            return {w: [c.numpy() for c in clips] for w, clips in stored["clips"].items()}
    spoken = iter(synthesize_all([(word, voice) for word in words for voice in voices]))
    clips = {word: [downsample(_trim(next(spoken)), 2) for _ in voices] for word in words}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_replace(path) as temporary:
        torch.save({"words": list(words), "voices": [list(vars(v).values()) for v in voices],
                    "clips": {w: [torch.from_numpy(c) for c in cs] for w, cs in clips.items()}}, temporary)
    return clips


@lru_cache(maxsize=1)
def word_clips() -> tuple[list[Voice], dict[str, list[np.ndarray]]]:
    """Every word of :data:`CAPTION_WORDS` spoken in every voice setting, trimmed of silence, at
    :data:`AUDIO_RATE`: ``(voices, {word: [clip per voice]})``. Synthesised once, then cached."""
    return _voices(), spoken_clips(CAPTION_WORDS, cache_dir() / f"speech-words-v{_CACHE_VERSION}.pt")


def voice_pool(split: str) -> np.ndarray:
    """Voice settings of a split: train gets 2/3 of them, validation and test the rest."""
    count = len(_voices())
    order = np.random.default_rng(2).permutation(count)
    return order[:2 * count // 3] if split == "train" else order[2 * count // 3:]


def _speak(words: list[str], voice: int, rng: np.random.Generator, snr_db: float,
           pause: tuple[float, float] = (0.05, 0.3)) -> tuple[torch.Tensor, list[list[float]]]:
    """Word clips of one voice with random pauses and white noise at ``snr_db``: the waveform and
    each word's ``[start, end]`` in seconds."""
    _, clips = word_clips()
    return mix_clips([clips[word][voice] for word in words], rng, snr_db, pause)


def mix_clips(clips: list[np.ndarray], rng: np.random.Generator, snr_db: float,
              pause: tuple[float, float] = (0.05, 0.3), margin: tuple[float, float] = (0.0, 0.15)
              ) -> tuple[torch.Tensor, list[list[float]]]:
    """``clips`` (at :data:`AUDIO_RATE`) in a row: a random silence of ``margin`` seconds before and
    after, random ``pause`` seconds between, a random gain in [0.5, 1.5] and white noise at
    ``snr_db`` dB (of the whole waveform's power). Returns the waveform and each clip's
    ``[start, end]`` in seconds."""
    pieces, spans = [np.zeros(int(rng.uniform(*margin) * AUDIO_RATE), np.float32)], []
    cursor = len(pieces[0])
    for i, clip in enumerate(clips):
        if i:
            gap = np.zeros(int(rng.uniform(*pause) * AUDIO_RATE), np.float32)
            pieces.append(gap)
            cursor += len(gap)
        spans.append([cursor / AUDIO_RATE, (cursor + len(clip)) / AUDIO_RATE])
        pieces.append(clip)
        cursor += len(clip)
    pieces.append(np.zeros(int(rng.uniform(*margin) * AUDIO_RATE), np.float32))
    waveform = np.concatenate(pieces) * rng.uniform(0.5, 1.5)
    power = float(np.mean(waveform ** 2)) + 1e-12
    waveform = waveform + rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), waveform.shape)
    return torch.from_numpy(waveform.astype(np.float32)), spans


def _half_blanked(image: torch.Tensor, rng: np.random.Generator, noise: float) -> torch.Tensor:
    image = image.clone()
    half = int(rng.integers(4))
    if half == 0:
        image[:4] = 0.0
    elif half == 1:
        image[4:] = 0.0
    elif half == 2:
        image[:, :4] = 0.0
    else:
        image[:, 4:] = 0.0
    noisy = image + noise * torch.from_numpy(rng.standard_normal(image.shape).astype(np.float32))
    return noisy.clamp(0.0, 1.0)


def spoken_sequence_digits(num_samples: int, split: str = "train", seed: int = 0, words: int = 3,
                           snr_db: tuple[float, float] = (5.0, 20.0), image_noise: float = 0.1
                           ) -> list[tuple[dict, int]]:
    """``(sample, label)`` pairs: ``{"text": {"tokens", "spans"}, "image": [8, 8], "audio":
    (waveform, AUDIO_RATE)}`` and the kept spoken digit (see the module docstring)."""
    check_split(split)
    if not 2 <= words <= 10:
        raise ValueError(f"spoken_sequence_digits 'words' must be 2-10 (distinct digits), got {words}")
    images, labels = digit_images(split)
    by_class = [torch.nonzero(labels == d).flatten() for d in range(10)]
    voices = voice_pool(split)
    rng = np.random.default_rng([seed, list(IMAGE_SPLITS).index(split)])
    data = []
    for _ in range(num_samples):
        digits = rng.choice(10, words, replace=False)
        kept = int(rng.integers(words))
        label = int(digits[kept])
        audio, spans = _speak([DIGIT_WORDS[d] for d in digits], int(rng.choice(voices)), rng,
                              float(rng.uniform(*snr_db)))
        tokens = [MARKERS[i == kept] for i in range(words)]
        image = _half_blanked(images[int(rng.choice(by_class[label]))], rng, image_noise)
        data.append(({"text": {"tokens": tokens, "spans": spans}, "image": image, "audio": (audio, AUDIO_RATE)},
                     label))
    return data


def _layouts(rng: np.random.Generator, groups: int, per_group: int) -> list[list[tuple[int, int]]]:
    """``groups`` sets of two or three distinct digits, each placed in ``per_group`` different
    quadrant arrangements: layouts are lists of ``(digit, quadrant)``."""
    layouts, seen = [], set()
    while len(layouts) < groups * per_group:
        count = int(rng.integers(2, 4))
        digits = rng.choice(10, count, replace=False)
        arrangements: set[tuple[int, ...]] = set()
        while len(arrangements) < per_group:
            arrangements.add(tuple(int(q) for q in rng.choice(4, count, replace=False)))
        group = [tuple(sorted(zip(digits.tolist(), quadrants, strict=True))) for quadrants in arrangements]
        if seen.isdisjoint(group):
            seen.update(group)
            layouts.extend([list(layout) for layout in group])
    return layouts


def digit_canvases(groups: dict[str, int], seed: int = 0, per_group: int = 3, speech: bool = True,
                   snr_db: tuple[float, float] = (10.0, 25.0)) -> dict[str, list[dict]]:
    """Retrieval splits ``{split: [sample, ...]}`` with ``groups[split] * per_group`` canvases each,
    in groups of the same digits in different quadrants. A sample is ``{"text": {"tokens",
    "spans"}, "image": [16, 16], "audio": (waveform, AUDIO_RATE)}`` (no ``"audio"`` nor spans
    without ``speech``). No layout appears in two splits."""
    for split in groups:
        check_split(split)
    rng = np.random.default_rng(seed)
    stream = _layouts(rng, sum(groups.values()), per_group)
    out, start = {}, 0
    for split, count in groups.items():
        layouts, start = stream[start:start + count * per_group], start + count * per_group
        out[split] = _canvases(layouts, split, np.random.default_rng([seed, list(IMAGE_SPLITS).index(split)]),
                               speech, snr_db)
    return out


def _canvases(layouts: list[list[tuple[int, int]]], split: str, rng: np.random.Generator, speech: bool,
              snr_db: tuple[float, float]) -> list[dict]:
    images, labels = digit_images(split)
    by_class = [torch.nonzero(labels == d).flatten() for d in range(10)]
    voices = voice_pool(split)
    data = []
    for layout in layouts:
        canvas = torch.zeros(16, 16)
        for digit, quadrant in layout:
            row, col = divmod(quadrant, 2)
            canvas[8 * row:8 * row + 8, 8 * col:8 * col + 8] = images[int(rng.choice(by_class[digit]))]
        named = dict((quadrant, digit) for digit, quadrant in layout)
        words = [DIGIT_WORDS[named[q]] if q in named else "blank" for q in range(len(QUADRANTS))]
        sample: dict = {"image": canvas}
        if speech:
            audio, spans = _speak(words, int(rng.choice(voices)), rng, float(rng.uniform(*snr_db)), (0.02, 0.08))
            sample["text"] = {"tokens": words, "spans": spans}
            sample["audio"] = (audio, AUDIO_RATE)
        else:
            sample["text"] = {"tokens": words}
        data.append(sample)
    return data
