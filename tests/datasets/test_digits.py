import numpy as np
import pytest
import torch

from graphfuse.datasets import digits
from graphfuse.datasets.digits import (
    AUDIO_RATE,
    DIGIT_WORDS,
    digit_canvases,
    digit_images,
    spoken_sequence_digits,
    word_clips,
)


def test_image_splits_are_disjoint_and_cover_load_digits():
    sizes = [digit_images(split)[0].shape[0] for split in ("train", "val", "test")]
    assert sum(sizes) == 1797
    _, _, splits = digits._digit_images()
    indices = np.concatenate(list(splits.values()))
    assert len(np.unique(indices)) == 1797


def _matches_an_image(image: torch.Tensor, pool: torch.Tensor, keep: torch.Tensor) -> bool:
    """Whether ``image`` equals one of ``pool`` where ``keep`` is set."""
    return bool(((pool - image).abs() * keep).amax(dim=(1, 2)).min() < 1e-6)


def test_sequence_sample_structure_and_label():
    data = spoken_sequence_digits(40, "val", seed=3, image_noise=0.0, snr_db=(80.0, 80.0))
    images, labels = digit_images("val")
    _, clips = word_clips()
    for sample, label in data:
        tokens, spans = sample["text"]["tokens"], np.array(sample["text"]["spans"])
        assert tokens.count("keep") == 1 and tokens.count("skip") == 2
        assert np.all(spans[:, 1] > spans[:, 0]) and np.all(spans[1:, 0] > spans[:-1, 1])
        waveform, rate = sample["audio"]
        assert rate == AUDIO_RATE and spans[-1, 1] <= len(waveform) / rate
        # The kept word's stretch of audio is the label's spoken clip (scaled, near-noiseless).
        start, end = (spans[tokens.index("keep")] * rate).round().astype(int)
        segment = waveform[start:end].numpy()
        best = max(abs(np.dot(segment, clip[:len(segment)])) / (np.linalg.norm(segment) * np.linalg.norm(clip) + 1e-9)
                   for clip in clips[DIGIT_WORDS[label]] if len(clip) == len(segment))
        assert best > 0.99
        # The unblanked half of the image is a handwritten image of the label.
        image = sample["image"]
        keep = (image != 0).float()
        assert keep.sum() > 0
        assert any(half.abs().sum() == 0 for half in (image[:4], image[4:], image[:, :4], image[:, 4:]))
        assert _matches_an_image(image, images[labels == label], keep)


def test_sequence_data_is_seeded():
    first = spoken_sequence_digits(5, "train", seed=1)
    again = spoken_sequence_digits(5, "train", seed=1)
    other = spoken_sequence_digits(5, "train", seed=2)
    for (sample, label), (same, same_label) in zip(first, again, strict=True):
        assert torch.equal(sample["audio"][0], same["audio"][0]) and label == same_label
    assert any(not torch.equal(a[0]["image"], b[0]["image"]) for a, b in zip(first, other, strict=True))


def test_sequence_labels_cover_the_classes():
    labels = [label for _, label in spoken_sequence_digits(300, "train")]
    counts = np.bincount(labels, minlength=10)
    assert counts.min() > 10


def test_canvases_captions_groups_and_splits():
    splits = digit_canvases({"train": 20, "val": 5, "test": 10}, seed=4, speech=False)
    assert {k: len(v) for k, v in splits.items()} == {"train": 60, "val": 15, "test": 30}
    layouts = {}
    for split, samples in splits.items():
        images, labels = digit_images(split)
        for sample in samples:
            words, canvas = sample["text"]["tokens"], sample["image"]
            assert len(words) == 4 and "spans" not in sample["text"] and "audio" not in sample
            layout = []
            for quadrant, word in enumerate(words):
                row, col = divmod(quadrant, 2)
                patch = canvas[8 * row:8 * row + 8, 8 * col:8 * col + 8]
                if word == "blank":
                    assert patch.abs().sum() == 0
                else:
                    digit = DIGIT_WORDS.index(word)
                    assert _matches_an_image(patch, images[labels == digit], torch.ones(8, 8))
                    layout.append((digit, quadrant))
            assert 2 <= len(layout) <= 3
            layouts.setdefault(split, []).append(tuple(layout))
    for found in layouts.values():
        # groups of three: the same digits, in different quadrants
        for i in range(0, len(found), 3):
            group = found[i:i + 3]
            assert len({tuple(sorted(d for d, _ in layout)) for layout in group}) == 1
            assert len(set(group)) == 3
    assert not set(layouts["train"]) & set(layouts["test"])
    assert not set(layouts["val"]) & set(layouts["test"])


def test_canvases_with_speech_have_word_spans():
    sample = digit_canvases({"test": 1}, seed=0)["test"][0]
    spans = np.array(sample["text"]["spans"])
    waveform, rate = sample["audio"]
    assert spans.shape == (4, 2) and spans[-1, 1] <= len(waveform) / rate


def test_word_clips_are_cached():
    voices, clips = word_clips()
    path = digits.cache_dir() / f"speech-words-v{digits._CACHE_VERSION}.pt"
    assert path.is_file()
    word_clips.cache_clear()
    again_voices, again = word_clips()
    assert again_voices == voices
    assert all(np.array_equal(a, b) for a, b in zip(clips["seven"], again["seven"], strict=True))


def test_bad_arguments():
    with pytest.raises(ValueError, match="split must be one of"):
        spoken_sequence_digits(1, "holdout")
    with pytest.raises(ValueError, match="'words' must be 2-10"):
        spoken_sequence_digits(1, words=11)
    with pytest.raises(ValueError, match="split must be one of"):
        digit_canvases({"dev": 3})
