"""Tiny shared fixtures: a tokenizer, raw tri-modal samples and a builder over them; the hypothesis profiles."""
import os

import pytest
import torch
from hypothesis import HealthCheck, settings

from graphfuse import AudioModality, GraphBuilder, ImageModality, TextModality, Tokenizer

CORPUS = ["a red square at the top left", "a blue circle at the bottom right", "the cat sat on the mat"]
SAMPLE_RATE = 16000

# The property tests (tests/**/test_properties_*.py): "ci", the default, replays the same few examples on
# every run (derandomized, so a failure is reproducible and the suite's time stays flat); "thorough"
# searches at random and at length: HYPOTHESIS_PROFILE=thorough pytest -k properties.
_SLOW_DATA = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=20, deadline=None, derandomize=True, database=None,
                          suppress_health_check=_SLOW_DATA)
settings.register_profile("thorough", max_examples=1000, deadline=None, suppress_health_check=_SLOW_DATA)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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


# Tiny pretrained-encoder stand-ins (random weights, built in-process: nothing is downloaded).

@pytest.fixture(scope="session")
def hf_tokenizer():
    """A fast WordPiece tokenizer trained on the corpus, with [CLS] ... [SEP] around each text."""
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer as Backend
    from tokenizers import models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Backend(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.train_from_iterator(CORPUS * 4 + ["squares and circles", "reddish cats"], trainers.WordPieceTrainer(
        vocab_size=80, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]))
    backend.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                           special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]")


@pytest.fixture
def bert(hf_tokenizer):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=len(hf_tokenizer), hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=2, intermediate_size=64, max_position_embeddings=64),
                     add_pooling_layer=False)


@pytest.fixture
def vit():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    return transformers.ViTModel(transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32,
                                                        num_hidden_layers=2, num_attention_heads=2,
                                                        intermediate_size=64), add_pooling_layer=False)


@pytest.fixture
def wav2vec2():
    """Hop 20 samples, receptive field 40 samples (conv kernels 10, 3, 3; strides 5, 2, 2)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    return transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16, 16),
        conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2))


class TinyCNN(torch.nn.Module):
    """A stride-8 CNN with a timm-style forward_features ([B, 16, H/8, W/8]) and a classifier forward."""

    feature_channels = 16

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 4, stride=4)
        self.body = torch.nn.Conv2d(8, 16, 2, stride=2)
        self.fc = torch.nn.Linear(16, 10)

    def forward_features(self, x):
        return self.body(torch.relu(self.stem(x)))

    def forward(self, x):
        return self.fc(self.forward_features(x).mean((2, 3)))


@pytest.fixture
def tiny_cnn():
    torch.manual_seed(0)
    return TinyCNN()
