"""Tiny shared fixtures: a tokenizer, raw tri-modal samples and a builder over them."""
import pytest
import torch

from graphfuse import AudioModality, GraphBuilder, ImageModality, TextModality, Tokenizer

CORPUS = ["a red square at the top left", "a blue circle at the bottom right", "the cat sat on the mat"]
SAMPLE_RATE = 16000


def waveform(seconds: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(int(seconds * SAMPLE_RATE), generator=generator)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny tensors: more threads only contend (several times
    slower on a busy 2-core machine). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tokenizer():
    return Tokenizer.from_corpus(CORPUS)


@pytest.fixture
def modalities(tokenizer):
    return {
        "text": TextModality(tokenizer, spans=True),
        "image": ImageModality(patch_size=4, channels=1),
        "audio": AudioModality(sample_rate=SAMPLE_RATE, n_mels=16),
    }


@pytest.fixture
def samples():
    """Raw samples of varied shapes, some missing a modality."""
    generator = torch.Generator().manual_seed(0)
    return [
        {"text": {"text": "a red square", "spans": [[0.0, 0.1], [0.1, 0.3], [0.3, 0.5]]},
         "image": torch.rand(1, 12, 16, generator=generator), "audio": waveform(0.5, 1)},
        {"text": "the cat sat on the mat",
         "image": torch.randint(0, 256, (8, 8), dtype=torch.uint8, generator=generator)},
        {"audio": waveform(0.3, 2), "image": torch.rand(1, 8, 12, generator=generator)},
        {"text": ["a", "blue", "circle"], "audio": waveform(0.2, 3)},
        {"text": "at the top left", "image": torch.rand(1, 12, 16, generator=generator), "audio": waveform(0.5, 4)},
    ]


@pytest.fixture
def builder(modalities):
    return GraphBuilder(modalities, cross="full")
