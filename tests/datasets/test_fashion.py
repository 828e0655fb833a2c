import gzip

import numpy as np
import pytest
import torch

from graphfuse.data import Tokenizer
from graphfuse.datasets import DatasetNotInstalledError, load_task
from graphfuse.datasets import tasks as tasks_module
from graphfuse.datasets.digits import AUDIO_RATE, voice_pool
from graphfuse.datasets.fashion import (
    FASHION_CLASSES,
    FASHION_FILES,
    FASHION_MNIST_ENV,
    FASHION_VOCABULARY,
    SPOKEN_DISTRACTORS,
    check_fashion_mnist,
    fashion_clips,
    fashion_images,
    fashion_samples,
    load_fashion_mnist,
    read_idx,
)
from graphfuse.datasets.tasks import CROSS_BUDGET

pytestmark = pytest.mark.usefixtures("one_thread")
CLEAN = {"image_noise": 0.0, "snr_db": (80.0, 80.0)}


def _write_idx(path, array: np.ndarray, code: int = 0x08) -> None:
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">i4").tobytes()
    content = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as handle:
            handle.write(content)
    else:
        path.write_bytes(content)


@pytest.fixture
def fake_fashion(tmp_path, monkeypatch):
    """A tiny Fashion-MNIST in the four IDX files, named by the environment variable: 40 training
    and 30 test photographs, each photograph's pixels all equal to its index (+1) in its file."""
    for part, count in (("train", 40), ("t10k", 30)):
        images_file, labels_file = FASHION_FILES[part]
        images = np.broadcast_to(np.arange(1, count + 1, dtype=np.uint8)[:, None, None], (count, 28, 28))
        _write_idx(tmp_path / images_file, np.ascontiguousarray(images))
        _write_idx(tmp_path / labels_file, (np.arange(count) % 10).astype(np.uint8))
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path))
    return tmp_path


def test_read_idx_round_trips(tmp_path):
    small = np.random.default_rng(0).integers(0, 256, (3, 4, 5)).astype(np.uint8)
    _write_idx(tmp_path / "small.gz", small)
    assert np.array_equal(read_idx(tmp_path / "small.gz"), small)
    wide = np.arange(-6, 6, dtype=np.int32).reshape(4, 3)
    _write_idx(tmp_path / "wide", wide, code=0x0C)
    read = read_idx(tmp_path / "wide")
    assert np.array_equal(read, wide) and read.dtype == np.int32


def test_read_idx_rejects_what_is_not_idx(tmp_path):
    (tmp_path / "text").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="is not an IDX file"):
        read_idx(tmp_path / "text")
    _write_idx(tmp_path / "short", np.zeros((2, 3), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_idx(tmp_path / "short")
    (tmp_path / "broken.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ValueError, match="Could not read the IDX file"):
        read_idx(tmp_path / "broken.gz")


def test_missing_data_raises_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path))
    (tmp_path / FASHION_FILES["train"][0]).write_bytes(b"")
    with pytest.raises(DatasetNotInstalledError, match="dataset-fashion-mnist") as error:
        load_fashion_mnist()
    message = str(error.value)
    assert FASHION_MNIST_ENV in message and "t10k-images-idx3-ubyte.gz" in message and "never downloads" in message
    assert isinstance(error.value, FileNotFoundError)
    assert tasks_module.DatasetNotInstalledError is DatasetNotInstalledError
    with pytest.raises(DatasetNotInstalledError, match="apt-get install dataset-fashion-mnist"):
        load_task("fashion", quick=True)
    with pytest.raises(DatasetNotInstalledError):
        fashion_samples(2)


def test_splits_read_the_right_files(fake_fashion):
    train, train_labels = fashion_images("train")
    assert train.shape == (40, 28, 28) and train.dtype == torch.uint8
    assert train[:, 0, 0].tolist() == list(range(1, 41)) and train_labels.tolist() == [i % 10 for i in range(40)]
    val, _ = fashion_images("val")
    test, _ = fashion_images("test")
    assert len(val) == len(test) == 15
    assert sorted(val[:, 0, 0].tolist() + test[:, 0, 0].tolist()) == list(range(1, 31))  # disjoint halves of t10k
    images, labels = load_fashion_mnist("t10k")
    assert not images.flags.writeable and labels.dtype == np.int64


def test_samples_show_the_class_in_every_modality(fake_fashion, clip_scores):
    clips = fashion_clips()
    split_photos = {}
    for split in ("train", "val", "test"):
        images, labels = fashion_images(split)
        data = fashion_samples(12, split, seed=1, speech_rate=1.0, text_rate=1.0, **CLEAN)
        photos = []
        for sample, label in data:
            image, (waveform, rate) = sample["image"], sample["audio"]
            assert image.shape == (28, 28) and image.dtype == torch.float32 and rate == AUDIO_RATE
            index = int(torch.nonzero(images[:, 0, 0] == round(float(image[0, 0]) * 255)).flatten()[0])
            assert torch.allclose(image * 255, images[index].float(), atol=1e-3) and int(labels[index]) == label
            photos.append(index)
            scores = clip_scores(waveform.numpy(), clips[FASHION_CLASSES[label]])
            assert scores.max() > 0.99 and int(scores.argmax()) in voice_pool(split)
            assert caption_class(sample["text"]) == [FASHION_CLASSES[label]]
            assert set(Tokenizer().tokenize(sample["text"])) <= set(FASHION_VOCABULARY)
        assert len(set(photos)) == len(photos)  # no photograph twice within a split
        split_photos[split] = {int(images[i, 0, 0]) for i in photos}
    assert not split_photos["val"] & split_photos["test"]


def test_speech_and_text_can_leave_the_class_out(fake_fashion, clip_scores):
    clips = fashion_clips()
    for sample, _ in fashion_samples(8, "test", seed=2, speech_rate=0.0, text_rate=0.0, **CLEAN):
        waveform = sample["audio"][0].numpy()
        assert max(clip_scores(waveform, clips[word]).max() for word in FASHION_CLASSES) < 0.95
        assert max(clip_scores(waveform, clips[word]).max() for word in SPOKEN_DISTRACTORS) > 0.99
        assert caption_class(sample["text"]) == []


def caption_class(text: str) -> list[str]:
    """The class names written in a description (``"t-shirt"`` does not count as ``"shirt"``)."""
    return [name for name in FASHION_CLASSES if f" {name} " in f" {text} "]


def test_rates_of_speech_and_text(fake_fashion, clip_scores):
    data = fashion_samples(300, "train", seed=3, text_rate=0.5)
    named = [caption_class(sample["text"]) for sample, _ in data]
    assert all(found in ([], [FASHION_CLASSES[label]]) for found, (_, label) in zip(named, data, strict=True))
    assert 0.4 < np.mean([bool(found) for found in named]) < 0.6
    for sample, label in fashion_samples(50, "train", seed=3, text_rate=0.0, text_wrong=1.0):
        found = caption_class(sample["text"])
        assert len(found) == 1 and found[0] != FASHION_CLASSES[label]  # a wrong class, never none
    clips = fashion_clips()
    spoken = [clip_scores(sample["audio"][0].numpy(), clips[FASHION_CLASSES[label]]).max() > 0.99
              for sample, label in fashion_samples(60, "val", seed=4, speech_rate=0.7, **CLEAN)]
    assert 0.5 < np.mean(spoken) < 0.9


def test_occlusion_and_noise(fake_fashion):
    sample, _ = fashion_samples(1, "val", seed=0, image_noise=0.0, occlusion=10)[0]
    image = sample["image"]
    zero = (image == 0).float()
    assert zero.sum() == 100  # the fake photographs have no black pixel of their own
    noisy, _ = fashion_samples(1, "val", seed=0, image_noise=0.3)[0]
    assert noisy["image"].min() >= 0 and noisy["image"].max() <= 1 and noisy["image"].std() > 0.05


def test_data_is_seeded(fake_fashion):
    first, again, other = (fashion_samples(5, "train", seed=s) for s in (7, 7, 8))
    for (sample, label), (same, same_label) in zip(first, again, strict=True):
        assert torch.equal(sample["image"], same["image"]) and torch.equal(sample["audio"][0], same["audio"][0])
        assert sample["text"] == same["text"] and label == same_label
    assert any(not torch.equal(a[0]["audio"][0], b[0]["audio"][0]) for a, b in zip(first, other, strict=True))


def test_bad_arguments(fake_fashion):
    with pytest.raises(ValueError, match="split must be one of"):
        fashion_samples(1, "holdout")
    with pytest.raises(ValueError, match="'occlusion' must be a square's side in pixels, 0-28, got 29"):
        fashion_samples(1, occlusion=29)
    with pytest.raises(ValueError, match="'speech_rate' must be a probability"):
        fashion_samples(1, speech_rate=-0.1)
    with pytest.raises(ValueError, match="part must be one of"):
        load_fashion_mnist("dev")


def _installed() -> bool:
    try:
        check_fashion_mnist()
    except DatasetNotInstalledError:
        return False
    return True


@pytest.mark.skipif(not _installed(), reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist():
    images, labels = load_fashion_mnist("train")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [6000] * 10
    assert load_fashion_mnist("t10k")[0].shape == (10000, 28, 28)
    task = load_task("fashion", quick=True)
    assert (len(task.train), len(task.val), len(task.test), task.num_classes) == (400, 100, 200, 10)
    graph = task.builder.build(task.train[0][0])
    assert graph["image"].num_nodes == 16
    for a, b in (("text", "image"), ("text", "audio"), ("image", "audio")):
        assert graph[a, "to", b].edge_index.size(1) == graph[b].num_nodes * min(CROSS_BUDGET, graph[a].num_nodes)
