"""Fashion-MNIST photographs with a spoken and a written description, none of them certain.

Sources (installed on the machine, nothing downloaded):

* images: the Fashion-MNIST photographs (Xiao, Rasul & Vollgraf 2017; 28x28 grey levels, 10 classes,
  MIT licence) as Debian's ``dataset-fashion-mnist`` package installs them:
  ``/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``. Another
  folder holding the same four files can be named by ``$GRAPHFUSE_FASHION_MNIST``. Where the files
  are absent, :class:`DatasetNotInstalledError` says how to install them;
* speech: espeak-ng (see :mod:`graphfuse.datasets.speech`) speaking the class names and a few
  distractor words in the 60 voice settings of :mod:`graphfuse.datasets.digits`, with that
  module's split of voices (validation and test voices are never heard in training);
* text: generated descriptions.

:func:`fashion_samples` (classification, 10 classes): the photograph in Gaussian pixel noise
(optionally with a blanked square); speech of a distractor word, the class name and maybe another
distractor, in noise, where the class name is replaced by a distractor with probability
``1 - speech_rate``; a written description of distractor words that holds the class name with
probability ``text_rate``. Each modality alone is an imperfect guess, and no node of one
corresponds to a node of another: the task builder joins them by strided cross-modal edges, a
few per node spread evenly over the other modality.

Training samples come from the 60,000 training photographs, validation and test samples from two
disjoint halves of the 10,000 test photographs (a seeded split); within a split no photograph is
used twice while there are enough. Speech clips are synthesised once and cached beside the digit
words (``$GRAPHFUSE_CACHE``, default ``~/.cache/graphfuse``).
"""
from __future__ import annotations

import gzip
import os
import re
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from graphfuse.datasets.digits import (
    AUDIO_RATE,
    IMAGE_SPLITS,
    cache_dir,
    check_split,
    mix_clips,
    spoken_clips,
    voice_pool,
)
from graphfuse.datasets.redundant import (
    caption,
    caption_class,
    check_count,
    check_noise,
    check_range,
    check_rate,
    noisy_image,
)

#: Fashion-MNIST's classes by label, as spoken and written (a multi-word name is one spoken clip).
FASHION_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle boot")
#: The words spoken around (or instead of) the class name.
SPOKEN_DISTRACTORS = ("new", "old", "nice", "item", "photo", "look")
#: The words written around (or instead of) the class name.
TEXT_DISTRACTORS = ("a", "the", "this", "is", "my", "new", "old", "nice", "item", "photo", "look", "for", "sale",
                    "good", "clean", "size", "of", "here")
#: Every text spoken, in synthesis order.
FASHION_SPOKEN_WORDS = FASHION_CLASSES + SPOKEN_DISTRACTORS
#: Every token of a description, split as :class:`~graphfuse.data.modalities.Tokenizer` splits them.
FASHION_VOCABULARY = tuple(dict.fromkeys(
    token for phrase in TEXT_DISTRACTORS + FASHION_CLASSES for token in re.findall(r"\w+|[^\w\s]", phrase)))
#: Names the folder of the four Fashion-MNIST files, instead of :data:`DEFAULT_FASHION_MNIST`.
FASHION_MNIST_ENV = "GRAPHFUSE_FASHION_MNIST"
#: Where Debian's ``dataset-fashion-mnist`` package installs the files.
DEFAULT_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
#: The image and label files of each part of Fashion-MNIST.
FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
_CACHE_VERSION = 1
# IDX element types: https://yann.lecun.com/exdb/mnist/ (big-endian)
_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class DatasetNotInstalledError(FileNotFoundError):
    """A data set that the library reads from the machine (it never downloads) is not installed."""


def fashion_mnist_folder() -> Path:
    """The folder read for Fashion-MNIST: ``$GRAPHFUSE_FASHION_MNIST`` or :data:`DEFAULT_FASHION_MNIST`."""
    return Path(os.environ.get(FASHION_MNIST_ENV) or DEFAULT_FASHION_MNIST)


def check_fashion_mnist(folder: str | os.PathLike | None = None) -> Path:
    """The Fashion-MNIST folder (see :func:`fashion_mnist_folder`) once its four files are there;
    else a :class:`DatasetNotInstalledError` naming the missing files and how to install them."""
    folder = fashion_mnist_folder() if folder is None else Path(folder)
    missing = [name for names in FASHION_FILES.values() for name in names if not (folder / name).is_file()]
    if missing:
        raise DatasetNotInstalledError(
            f"Fashion-MNIST is not installed: {folder} lacks {', '.join(missing)}. Install Debian's package "
            f"(apt-get install dataset-fashion-mnist), or set ${FASHION_MNIST_ENV} to a folder holding "
            f"{', '.join(n for names in FASHION_FILES.values() for n in names)}; graphfuse never downloads data")
    return folder


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (the MNIST format), gzip-compressed if its name ends in
    ``.gz``: magic ``0x00 0x00 <type> <dims>``, then one big-endian int32 per dimension, then the
    elements in C order. Raises :class:`ValueError` naming the file where it is not one."""
    path = Path(path)
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as handle:
            content = handle.read()
    except (OSError, EOFError, zlib.error) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(f"Could not read the IDX file {path} ({error}); reinstall it (for Fashion-MNIST: "
                         f"apt-get install --reinstall dataset-fashion-mnist)") from error
    if len(content) < 4 or content[:2] != b"\x00\x00" or content[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file: it starts with {content[:4].hex() or 'nothing'}, expected "
                         f"00 00, an element type in {[hex(t) for t in _IDX_TYPES]} and the number of dimensions")
    dtype, ndim = _IDX_TYPES[content[2]], content[3]
    header = 4 + 4 * ndim
    if len(content) < header:
        raise ValueError(f"{path} is a truncated IDX file: {len(content)} bytes, shorter than its header")
    shape = tuple(int(d) for d in np.frombuffer(content, ">i4", ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(content) != expected:
        raise ValueError(f"{path} holds {len(content)} bytes but its header (shape {shape}, {dtype}) needs "
                         f"{expected}; the file is truncated or corrupt")
    return np.frombuffer(content, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


@lru_cache(maxsize=4)
def _fashion_part(folder: str, part: str) -> tuple[np.ndarray, np.ndarray]:
    images_file, labels_file = (Path(folder) / name for name in FASHION_FILES[part])
    images, labels = read_idx(images_file), read_idx(labels_file)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{images_file} holds {images.dtype} images of shape {images.shape}; Fashion-MNIST's "
                         f"are uint8 [N, 28, 28]")
    if labels.ndim != 1 or len(labels) != len(images) or (labels.size and labels.max() >= len(FASHION_CLASSES)):
        raise ValueError(f"{labels_file} holds labels of shape {labels.shape} (largest "
                         f"{labels.max() if labels.size else None}); expected one of 0-9 per image of {images_file} "
                         f"({len(images)})")
    images.setflags(write=False)
    labels = labels.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


def load_fashion_mnist(part: str = "train", folder: str | os.PathLike | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """One part of Fashion-MNIST, ``"train"`` (60,000) or ``"t10k"`` (10,000): read-only ``uint8
    [N, 28, 28]`` images and ``int64 [N]`` labels, read once per folder and part."""
    if part not in FASHION_FILES:
        raise ValueError(f"Fashion-MNIST part must be one of {tuple(FASHION_FILES)}, got {part!r}")
    return _fashion_part(str(check_fashion_mnist(folder)), part)


def _split_index(split: str, count: int) -> np.ndarray:
    """The photographs of a split: all of ``train``; two disjoint halves of ``t10k`` for validation
    and test."""
    if split == "train":
        return np.arange(count)
    order = np.random.default_rng(0).permutation(count)
    return order[:count // 2] if split == "val" else order[count // 2:]


def fashion_images(split: str = "train", folder: str | os.PathLike | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The photographs (``uint8 [N, 28, 28]``, grey levels 0-255) and labels of one split: the
    training file for ``"train"``, disjoint halves of the test file for ``"val"`` and ``"test"``."""
    check_split(split)
    images, labels = load_fashion_mnist("train" if split == "train" else "t10k", folder)
    index = _split_index(split, len(images))
    return torch.from_numpy(images[index]), torch.from_numpy(labels[index])


@lru_cache(maxsize=1)
def fashion_clips() -> dict[str, list[np.ndarray]]:
    """Every text of :data:`FASHION_SPOKEN_WORDS` spoken in every voice setting of
    :func:`graphfuse.datasets.digits.word_clips`, trimmed, at :data:`AUDIO_RATE`: ``{word: [clip per
    voice]}``. Synthesised once (a minute or two), then cached."""
    return spoken_clips(FASHION_SPOKEN_WORDS, cache_dir() / f"speech-fashion-v{_CACHE_VERSION}.pt")


def _occlude(image: torch.Tensor, rng: np.random.Generator, size: int) -> torch.Tensor:
    row, col = (int(v) for v in rng.integers(0, 28 - size + 1, 2))
    image = image.clone()
    image[row:row + size, col:col + size] = 0.0
    return image


def fashion_samples(num_samples: int, split: str = "train", seed: int = 0, image_noise: float = 0.3,
                    occlusion: int = 0, snr_db: tuple[float, float] = (5.0, 20.0), speech_rate: float = 0.7,
                    text_rate: float = 0.5, text_wrong: float = 0.0,
                    folder: str | os.PathLike | None = None) -> list[tuple[dict, int]]:
    """``(sample, label)`` pairs, ``sample = {"text": str, "image": [28, 28], "audio": (waveform,
    AUDIO_RATE)}`` and the photograph's class (see the module docstring).

    Args:
        num_samples (int): how many pairs; photographs are drawn without replacement from the
            split while it has enough (so classes are about balanced, as in Fashion-MNIST).
        split (str, optional): ``"train"``, ``"val"`` or ``"test"``. (default: :obj:`"train"`)
        seed (int, optional): the data's seed. (default: :obj:`0`)
        image_noise (float, optional): standard deviation of the Gaussian pixel noise (pixels in
            [0, 1], clamped after). (default: :obj:`0.3`)
        occlusion (int, optional): side in pixels of a square blanked at a random place of each
            photograph (0-28). (default: :obj:`0`, none)
        snr_db (tuple, optional): the range of the speech's signal-to-noise ratio in dB (of the
            whole clip's power, pauses included), drawn uniformly per sample.
            (default: :obj:`(5.0, 20.0)`)
        speech_rate (float, optional): probability that the speech says the class name; otherwise
            a distractor word takes its place. (default: :obj:`0.7`)
        text_rate (float, optional): probability that the description names the class.
            (default: :obj:`0.5`)
        text_wrong (float, optional): probability that a description which does not name the class
            names a wrong one (drawn uniformly) instead of none. (default: :obj:`0.0`)
        folder (str, optional): the Fashion-MNIST folder. (default: :func:`fashion_mnist_folder`)
    """
    check_split(split)
    check_count(num_samples, "fashion_samples 'num_samples'")
    check_noise(image_noise, "fashion_samples 'image_noise'")
    if isinstance(occlusion, bool) or not isinstance(occlusion, int) or not 0 <= occlusion <= 28:
        raise ValueError(f"fashion_samples 'occlusion' must be a square's side in pixels, 0-28, got {occlusion!r}")
    check_range(snr_db, "fashion_samples 'snr_db'")
    check_rate(speech_rate, "fashion_samples 'speech_rate'")
    check_rate(text_rate, "fashion_samples 'text_rate'")
    check_rate(text_wrong, "fashion_samples 'text_wrong'")
    images, labels = load_fashion_mnist("train" if split == "train" else "t10k", folder)
    pool = _split_index(split, len(images))
    clips = fashion_clips()
    voices = voice_pool(split)
    rng = np.random.default_rng([seed, list(IMAGE_SPLITS).index(split), 3])
    chosen = pool[rng.choice(len(pool), num_samples, replace=num_samples > len(pool))]
    data = []
    for index in chosen:
        label = int(labels[index])
        image = noisy_image(torch.from_numpy(images[index].astype(np.float32) / 255.0), rng, image_noise)
        if occlusion:
            image = _occlude(image, rng, occlusion)
        first, instead, last = (SPOKEN_DISTRACTORS[i] for i in rng.choice(len(SPOKEN_DISTRACTORS), 3, replace=False))
        spoken = [first, FASHION_CLASSES[label] if rng.random() < speech_rate else instead]
        if rng.random() < 0.5:
            spoken.append(last)
        voice = int(rng.choice(voices))
        audio, _ = mix_clips([clips[word][voice] for word in spoken], rng, float(rng.uniform(*snr_db)))
        named = caption_class(rng, label, len(FASHION_CLASSES), text_rate, text_wrong)
        text = caption(rng, TEXT_DISTRACTORS, None if named is None else FASHION_CLASSES[named])
        data.append(({"text": text, "image": image, "audio": (audio, AUDIO_RATE)}, label))
    return data
