"""Tri-modal digits where every modality carries the label on its own, noisily, and nothing pairs them.

The sources are those of :mod:`graphfuse.datasets.digits` (scikit-learn's ``load_digits`` images,
espeak-ng speech, generated captions; nothing downloaded), and every split keeps that module's
disjoint handwritten images and voices (validation and test voices are never heard in training).
No node of one modality corresponds to a node of another, so the task builders join every pair of
modalities by strided cross-modal edges, a few per node spread evenly over the other modality:
nothing about which node matches which is built into the graph.

Two datasets:

* :func:`redundant_digits` (classification, 10 classes): a handwritten digit in Gaussian pixel
  noise, the digit's word spoken in noise at a random (low) signal-to-noise ratio, and a caption of
  filler words that names the digit only with probability ``text_rate`` (otherwise it names no
  digit, or with probability ``text_wrong`` a wrong one). Each modality alone is an imperfect
  guess; their evidence adds up.
* :func:`matching_digits` (classification, 2 classes, exactly balanced): a handwritten digit and a
  spoken digit; the label says whether they are the same digit. Either modality alone says nothing
  about the label: only comparing the two does.
"""
from __future__ import annotations

import numpy as np
import torch

from graphfuse.datasets.digits import (
    AUDIO_RATE,
    DIGIT_WORDS,
    IMAGE_SPLITS,
    check_split,
    digit_images,
    mix_clips,
    voice_pool,
    word_clips,
)

#: The words of captions besides the digit words (single tokens of the default Tokenizer).
FILLER_WORDS = ("a", "the", "number", "digit", "written", "here", "is", "this", "shows", "card", "on", "of",
                "hand", "drawn", "small", "picture", "see", "ink", "page")
#: Every token of a caption: :data:`FILLER_WORDS` and the digit words.
REDUNDANT_VOCABULARY = FILLER_WORDS + DIGIT_WORDS
#: Silence before and after a lone spoken word, in seconds.
WORD_MARGIN = (0.05, 0.4)
_STREAMS = {"redundant": 1, "match": 2}


def check_rate(value: float, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must be a probability in [0, 1], got {value!r}")


def check_noise(value: float, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0.0:
        raise ValueError(f"{what} must be a standard deviation >= 0, got {value!r}")


def check_range(value: tuple[float, float], what: str) -> None:
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in value)
            or value[0] > value[1]):
        raise ValueError(f"{what} must be a (low, high) pair of finite numbers with low <= high, got {value!r}")


def check_count(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be an integer >= 0, got {value!r}")


def noisy_image(image: torch.Tensor, rng: np.random.Generator, noise: float) -> torch.Tensor:
    """``image`` plus Gaussian noise of standard deviation ``noise``, clamped to [0, 1]."""
    noisy = image + noise * torch.from_numpy(rng.standard_normal(tuple(image.shape)).astype(np.float32))
    return noisy.clamp(0.0, 1.0)


def caption(rng: np.random.Generator, filler: tuple[str, ...], name: str | None,
            length: tuple[int, int] = (5, 7)) -> str:
    """A caption of ``length[0]``-``length[1]`` words: random ``filler`` words with ``name`` (one or
    more words, kept together) at a random place, or filler words only where ``name`` is ``None``."""
    count = int(rng.integers(length[0], length[1] + 1))
    named = [] if name is None else name.split()
    words = [str(w) for w in rng.choice(filler, max(count - len(named), 1))]
    at = int(rng.integers(len(words) + 1))
    return " ".join(words[:at] + named + words[at:])


def caption_class(rng: np.random.Generator, label: int, classes: int, text_rate: float,
                  text_wrong: float) -> int | None:
    """Which class a caption names: ``label`` with probability ``text_rate``, else with probability
    ``text_wrong`` another class drawn uniformly, else none (``None``). Three draws, always."""
    right, wrong, other = rng.random(), rng.random(), int(rng.integers(1, classes))
    if right < text_rate:
        return label
    return (label + other) % classes if wrong < text_wrong else None


def _spoken_digit(digit: int, voices: np.ndarray, rng: np.random.Generator,
                  snr_db: tuple[float, float]) -> torch.Tensor:
    _, clips = word_clips()
    voice = int(rng.choice(voices))
    waveform, _ = mix_clips([clips[DIGIT_WORDS[digit]][voice]], rng, float(rng.uniform(*snr_db)),
                            margin=WORD_MARGIN)
    return waveform


def _generator(seed: int, split: str, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, list(IMAGE_SPLITS).index(split), _STREAMS[stream]])


def redundant_digits(num_samples: int, split: str = "train", seed: int = 0, image_noise: float = 0.4,
                     snr_db: tuple[float, float] = (-15.0, 0.0), text_rate: float = 0.5,
                     text_wrong: float = 0.0) -> list[tuple[dict, int]]:
    """``(sample, label)`` pairs, ``sample = {"text": str, "image": [8, 8], "audio": (waveform,
    AUDIO_RATE)}``, each modality showing the label ``digit`` on its own, imperfectly.

    Args:
        num_samples (int): how many pairs; labels are drawn uniformly.
        split (str, optional): ``"train"``, ``"val"`` or ``"test"``: which handwritten images and
            voices are used (disjoint between splits). (default: :obj:`"train"`)
        seed (int, optional): the data's seed. (default: :obj:`0`)
        image_noise (float, optional): standard deviation of the Gaussian pixel noise on the
            handwritten digit (pixels in [0, 1], clamped after). (default: :obj:`0.4`)
        snr_db (tuple, optional): the range of the speech's signal-to-noise ratio in dB (of the
            whole clip's power, silences included), drawn uniformly per sample.
            (default: :obj:`(-15.0, 0.0)`)
        text_rate (float, optional): probability that the caption names the digit.
            (default: :obj:`0.5`)
        text_wrong (float, optional): probability that a caption which does not name the digit
            names a wrong one (drawn uniformly) instead of no digit. (default: :obj:`0.0`, such a
            caption has filler words only)
    """
    check_split(split)
    check_count(num_samples, "redundant_digits 'num_samples'")
    check_noise(image_noise, "redundant_digits 'image_noise'")
    check_range(snr_db, "redundant_digits 'snr_db'")
    check_rate(text_rate, "redundant_digits 'text_rate'")
    check_rate(text_wrong, "redundant_digits 'text_wrong'")
    images, by_class, voices, rng = _sources(split, seed, "redundant")
    data = []
    for _ in range(num_samples):
        label = int(rng.integers(10))
        image = noisy_image(images[int(rng.choice(by_class[label]))], rng, image_noise)
        audio = _spoken_digit(label, voices, rng, snr_db)
        named = caption_class(rng, label, 10, text_rate, text_wrong)
        text = caption(rng, FILLER_WORDS, None if named is None else DIGIT_WORDS[named])
        data.append(({"text": text, "image": image, "audio": (audio, AUDIO_RATE)}, label))
    return data


def matching_digits(num_samples: int, split: str = "train", seed: int = 0, image_noise: float = 0.1,
                    snr_db: tuple[float, float] = (5.0, 20.0)) -> list[tuple[dict, int]]:
    """``(sample, label)`` pairs, ``sample = {"image": [8, 8], "audio": (waveform, AUDIO_RATE)}``: a
    handwritten digit and a spoken digit, ``label`` 1 where they are the same digit and 0 where the
    spoken one is another digit (drawn uniformly from the nine others). The image's digit is drawn
    uniformly; exactly ``num_samples // 2`` pairs (rounded up) are matches, in a shuffled order.

    Args:
        num_samples (int): how many pairs.
        split (str, optional): ``"train"``, ``"val"`` or ``"test"`` (disjoint images and voices).
            (default: :obj:`"train"`)
        seed (int, optional): the data's seed. (default: :obj:`0`)
        image_noise (float, optional): standard deviation of the Gaussian pixel noise.
            (default: :obj:`0.1`)
        snr_db (tuple, optional): the range of the speech's signal-to-noise ratio in dB.
            (default: :obj:`(5.0, 20.0)`)
    """
    check_split(split)
    check_count(num_samples, "matching_digits 'num_samples'")
    check_noise(image_noise, "matching_digits 'image_noise'")
    check_range(snr_db, "matching_digits 'snr_db'")
    images, by_class, voices, rng = _sources(split, seed, "match")
    matches = rng.permutation(np.arange(num_samples) < (num_samples + 1) // 2)
    data = []
    for match in matches:
        digit = int(rng.integers(10))
        spoken = digit if match else (digit + int(rng.integers(1, 10))) % 10
        image = noisy_image(images[int(rng.choice(by_class[digit]))], rng, image_noise)
        audio = _spoken_digit(spoken, voices, rng, snr_db)
        data.append(({"image": image, "audio": (audio, AUDIO_RATE)}, int(match)))
    return data


def _sources(split: str, seed: int, stream: str) -> tuple[torch.Tensor, list[torch.Tensor], np.ndarray,
                                                         np.random.Generator]:
    """The split's digit images, their indices per class, its voices and the generator of ``stream``."""
    images, labels = digit_images(split)
    return images, [torch.nonzero(labels == d).flatten() for d in range(10)], voice_pool(split), \
        _generator(seed, split, stream)
