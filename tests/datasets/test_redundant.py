import numpy as np
import pytest
import torch

from graphfuse.datasets.digits import AUDIO_RATE, DIGIT_WORDS, digit_images, voice_pool, word_clips
from graphfuse.datasets.redundant import REDUNDANT_VOCABULARY, matching_digits, redundant_digits

pytestmark = pytest.mark.usefixtures("one_thread")
CLEAN = {"image_noise": 0.0, "snr_db": (80.0, 80.0)}


def _image_digit(image: torch.Tensor, split: str) -> int:
    """The digit of the split's handwritten image that ``image`` equals (noiseless)."""
    images, labels = digit_images(split)
    distance = (images - image).abs().amax(dim=(1, 2))
    assert float(distance.min()) < 1e-6, "the image is none of the split's handwritten images"
    return int(labels[int(distance.argmin())])


def _spoken(waveform: torch.Tensor, clip_scores) -> tuple[int, int, float]:
    """The digit word, voice and score of the clip found best in ``waveform``."""
    _, clips = word_clips()
    scores = np.stack([clip_scores(waveform.numpy(), clips[word]) for word in DIGIT_WORDS])
    digit, voice = np.unravel_index(scores.argmax(), scores.shape)
    return int(digit), int(voice), float(scores.max())


@pytest.mark.parametrize("split", ["train", "test"])
def test_redundant_modalities_each_show_the_label(split, clip_scores):
    data = redundant_digits(20, split, seed=3, text_rate=0.5, **CLEAN)
    for sample, label in data:
        assert set(sample) == {"text", "image", "audio"}
        image, (waveform, rate) = sample["image"], sample["audio"]
        assert image.shape == (8, 8) and rate == AUDIO_RATE and waveform.dim() == 1
        assert _image_digit(image, split) == label
        digit, voice, score = _spoken(waveform, clip_scores)
        assert digit == label and score > 0.99
        assert voice in voice_pool(split)  # validation / test voices are never heard in training
        words = sample["text"].split()
        assert 5 <= len(words) <= 7 and set(words) <= set(REDUNDANT_VOCABULARY)
        assert [w for w in words if w in DIGIT_WORDS] in ([], [DIGIT_WORDS[label]])


def test_noise_makes_modalities_imperfect():
    sample, _ = redundant_digits(1, "val", seed=0)[0]
    image = sample["image"]
    assert image.min() >= 0 and image.max() <= 1
    images, _ = digit_images("val")
    assert (images - image).abs().amax(dim=(1, 2)).min() > 0.1  # no longer exactly a handwritten image


def test_caption_rate_follows_text_rate():
    def named(**kwargs):
        data = [(sample["text"].split(), label) for sample, label in redundant_digits(600, "train", seed=1, **kwargs)]
        right = np.mean([DIGIT_WORDS[label] in words for words, label in data])
        any_digit = np.mean([any(w in DIGIT_WORDS for w in words) for words, _ in data])
        return right, any_digit

    right, any_digit = named(text_rate=0.5)
    assert 0.4 < right < 0.6 and any_digit == right
    assert named(text_rate=0.0) == (0.0, 0.0)
    assert named(text_rate=1.0) == (1.0, 1.0)
    right, any_digit = named(text_rate=0.0, text_wrong=1.0)
    assert right == 0.0 and any_digit == 1.0  # every caption names a wrong digit


def test_labels_cover_the_classes():
    counts = np.bincount([label for _, label in redundant_digits(400, "train")], minlength=10)
    assert counts.min() > 15


def test_data_is_seeded():
    first, again, other = (redundant_digits(6, "val", seed=s) for s in (4, 4, 5))
    for (sample, label), (same, same_label) in zip(first, again, strict=True):
        assert torch.equal(sample["image"], same["image"]) and torch.equal(sample["audio"][0], same["audio"][0])
        assert sample["text"] == same["text"] and label == same_label
    assert any(not torch.equal(a[0]["image"], b[0]["image"]) for a, b in zip(first, other, strict=True))
    matches = matching_digits(6, "val", seed=4), matching_digits(6, "val", seed=4)
    assert all(torch.equal(a[0]["audio"][0], b[0]["audio"][0]) for a, b in zip(*matches, strict=True))


def test_match_is_balanced_and_labels_say_whether_digits_agree(clip_scores):
    data = matching_digits(31, "val", seed=2, **CLEAN)
    assert sum(label for _, label in data) == 16
    spoken_others = set()
    for sample, label in data:
        assert set(sample) == {"image", "audio"}
        digit = _image_digit(sample["image"], "val")
        spoken, _, score = _spoken(sample["audio"][0], clip_scores)
        assert score > 0.99
        assert label == int(spoken == digit)
        if not label:
            spoken_others.add((spoken - digit) % 10)
    assert len(spoken_others) > 3  # mismatches are drawn among the other digits
    assert [label for _, label in matching_digits(2000, "train")].count(1) == 1000


def test_bad_arguments():
    with pytest.raises(ValueError, match="split must be one of"):
        redundant_digits(1, "holdout")
    with pytest.raises(ValueError, match="'text_rate' must be a probability in \\[0, 1\\], got 1.5"):
        redundant_digits(1, text_rate=1.5)
    with pytest.raises(ValueError, match="'image_noise' must be a standard deviation >= 0, got -0.1"):
        redundant_digits(1, image_noise=-0.1)
    with pytest.raises(ValueError, match="'snr_db' must be a \\(low, high\\) pair"):
        redundant_digits(1, snr_db=(10.0, 0.0))
    with pytest.raises(ValueError, match="'num_samples' must be an integer >= 0"):
        matching_digits(-1)
    with pytest.raises(ValueError, match="split must be one of"):
        matching_digits(2, "dev")
