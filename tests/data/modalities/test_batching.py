"""Batched featurisation (Modality.featurize_many) equals featurising one input at a time, for every
built-in modality: mixed lengths, sizes, rates and dtypes in one batch."""
import warnings

import numpy as np
import pytest
import torch

from graphfuse import (
    AudioModality,
    FeatureModality,
    ImageEncoderModality,
    ImageModality,
    SpeechEncoderModality,
    TextEncoderModality,
    TextModality,
    Tokenizer,
)
from graphfuse.data import chain_edges
from graphfuse.data.modalities import Modality, audio, image
from graphfuse.data.modalities.batching import chain_edges_many, featurizes_as, in_groups, sequence_positions
from graphfuse.data.nodes import NODE_ATTRIBUTES

pytestmark = pytest.mark.usefixtures("one_thread")
TOKENIZER = Tokenizer(["a", "red", "square", "the", "cat", "sat"])


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def noise(length, seed=0, channels=None):
    shape = (length,) if channels is None else (channels, length)
    return 0.1 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def assert_same_nodes(together, alone):
    """Float attributes within float32 rounding, the rest exactly."""
    for name in NODE_ATTRIBUTES:
        value, expected = getattr(together, name), getattr(alone, name)
        assert (value is None) == (expected is None), name
        if expected is not None:
            assert value.dtype == expected.dtype and value.shape == expected.shape, name
            torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert torch.equal(together.edge_index, alone.edge_index)
    assert together.structure == alone.structure


def assert_batched_equals_alone(modality, raws):
    together = modality.featurize_many(raws)
    assert len(together) == len(raws)
    for nodes, raw in zip(together, raws, strict=True):
        assert_same_nodes(nodes, modality.featurize(raw))
    return together


def test_audio_clips_of_mixed_lengths_rates_and_forms():
    raws = [
        noise(100),  # shorter than one window: padded to one frame
        noise(400, 1),  # exactly one window
        noise(4_000, 2),
        noise(4_050, 3),  # samples after the last whole frame are dropped
        (noise(9_000, 4, channels=2), 22_050),  # another rate: its own transform
        {"waveform": (noise(3_000, 5) * 32767).to(torch.int16), "sample_rate": 16_000},
        {"array": noise(5_000, 6).numpy(), "sampling_rate": 8_000, "path": None},
        noise(48_000, 7),  # three seconds
    ]
    together = assert_batched_equals_alone(AudioModality(n_mels=16, f_max=4000.0), raws)
    assert [nodes.num_nodes for nodes in together[:4]] == [1, 1, 23, 23]


@pytest.mark.parametrize("alone_frames", [512, 20])
def test_audio_frames_of_several_clips_share_chunks(monkeypatch, alone_frames):
    """Groups of at most 7 frames transformed 5 frames at a time: clips start and end inside chunks and
    groups, and long clips span several; with ``_ALONE_FRAMES`` at 20 the clips of 23 and 98 frames
    are transformed by themselves."""
    raws = [noise(length, seed) for seed, length in enumerate((400, 1_500, 4_000, 720, 16_000))]
    alone = [AudioModality(n_mels=8).featurize(raw) for raw in raws]
    monkeypatch.setattr(audio, "_FRAME_CHUNK", 7)
    monkeypatch.setattr(audio, "_CHUNK_BYTES", 5 * 4 * 512)
    monkeypatch.setattr(audio, "_ALONE_FRAMES", alone_frames)
    for nodes, expected in zip(AudioModality(n_mels=8).featurize_many(raws), alone, strict=True):
        assert_same_nodes(nodes, expected)


def test_audio_features_match_the_dense_filter_bank():
    """The banded projection (filter_bands) is the dense power @ filters."""
    modality = AudioModality(n_mels=40, f_min=50.0, f_max=7000.0)
    win, hop, n_fft, window, _ = modality._analysis_for(16_000)
    clip = noise(8_000)
    frames = clip.unfold(0, win, hop).double() * window.double()
    power = torch.fft.rfft(frames, n=n_fft).abs().pow(2)
    filters = audio.mel_filter_bank(n_fft // 2 + 1, 40, 16_000, 50.0, 7000.0).double()
    expected = torch.log(power @ filters + 1e-6).float()
    torch.testing.assert_close(modality.featurize_many([clip])[0].x, expected, rtol=1e-4, atol=1e-4)


def test_a_loud_clip_among_quiet_ones_is_named_by_its_level():
    with pytest.raises(ValueError, match=r"Modality 'audio' received samples as loud as 1e\+30, whose power "):
        AudioModality().featurize_many([noise(800), torch.full((800,), 1e30), noise(900)])


def test_images_of_mixed_sizes_dtypes_and_channels():
    generator = torch.Generator().manual_seed(0)
    raws = [
        rand(3, 8, 12),
        torch.randint(0, 256, (3, 8, 12), dtype=torch.uint8, generator=generator),  # same size, other dtype
        rand(3, 8, 12, seed=1),
        rand(7, 10),  # one channel, repeated; padded to 8 x 12
        torch.randint(0, 256, (16, 16), dtype=torch.uint8, generator=generator),
        rand(3, 16, 16, seed=2).double(),
        np.asarray(rand(3, 4, 4, seed=3)),
    ]
    assert_batched_equals_alone(ImageModality(patch_size=4), raws)
    assert_batched_equals_alone(ImageModality(patch_size=4, neighbourhood=8, self_loops=True), raws)


def test_images_are_cut_a_few_at_a_time(monkeypatch):
    raws = [torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
            for seed in range(5)]
    alone = [ImageModality(patch_size=4).featurize(raw) for raw in raws]
    monkeypatch.setattr(image, "_CHUNK_BYTES", 2 * 3 * 8 * 8 * 4)  # two images per chunk
    for nodes, expected in zip(ImageModality(patch_size=4).featurize_many(raws), alone, strict=True):
        assert_same_nodes(nodes, expected)


def test_channels_last_and_pil_images():
    pil = pytest.importorskip("PIL.Image")
    pixels = torch.randint(0, 256, (8, 12, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    raws = [pixels, pil.fromarray(pixels.numpy()), pixels.float() / 255]
    assert_batched_equals_alone(ImageModality(patch_size=4, channels_last=True), raws)


@pytest.mark.parametrize("spans", [False, True])
def test_texts_of_mixed_lengths_and_forms(spans):
    raws = ["a red square", "the cat", ["Red", "dog"], "a"]
    if spans:
        raws += [{"text": "the cat sat", "spans": [[0.0, 0.5], [0.5, 0.7], [0.7, 1.0]]},
                 {"tokens": ["a", "cat"], "spans": [[1.0, 1.5], [1.5, 2.0]]}]
    together = assert_batched_equals_alone(TextModality(TOKENIZER, window=2, spans=spans), raws)
    assert [nodes.num_nodes for nodes in together[:4]] == [3, 2, 2, 1]


def test_texts_past_max_length_are_truncated_as_alone():
    raws = ["a red square the cat sat", {"text": "the cat sat", "spans": [[0, 1], [1, 2], [2, 3]]}, "a"]
    together = assert_batched_equals_alone(TextModality(TOKENIZER, max_length=2, spans=True), raws)
    assert [nodes.num_nodes for nodes in together] == [2, 2, 1]


def test_hugging_face_texts_in_one_tokenizer_call_per_form(hf_tokenizer):
    calls = []

    class Counting(type(hf_tokenizer)):
        def __call__(self, text, **kwargs):
            calls.append(text)
            return super().__call__(text, **kwargs)

    hf_tokenizer = Counting(tokenizer_object=hf_tokenizer.backend_tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                            cls_token="[CLS]", sep_token="[SEP]")
    raws = ["a red square", ["reddish", "squares"], "the cat sat on the mat",
            {"text": "reddish cats", "spans": [[0.0, 0.5], [0.5, 1.0]]},
            {"tokens": ["the", "cat"], "spans": [[0.0, 0.5], [0.5, 1.0]]}]
    modality = TextModality(hf_tokenizer, max_length=5, spans=True)
    together = modality.featurize_many(raws)
    # the strings, those longer than max_length again (with truncation), then the word lists likewise
    assert calls == [["a red square", "the cat sat on the mat", "reddish cats"], ["the cat sat on the mat",
                                                                                 "reddish cats"],
                     [["reddish", "squares"], ["the", "cat"]], [["reddish", "squares"]]]
    for nodes, raw in zip(together, raws, strict=True):
        assert_same_nodes(nodes, modality.featurize(raw))


def test_a_bad_input_among_good_ones_raises_as_alone():
    with pytest.raises(ValueError, match="received empty text"):
        TextModality(TOKENIZER).featurize_many(["a cat", "  ", "the cat"])
    with pytest.raises(ValueError, match=r"received a 9x8 image, not divisible into 4x4 patches"):
        ImageModality(size_policy="error").featurize_many([rand(3, 8, 8), rand(3, 9, 8)])
    with pytest.raises(ValueError, match="received an empty waveform"):
        AudioModality().featurize_many([noise(800), torch.zeros(0)])


def test_features_are_featurised_one_at_a_time_by_default():
    modality = FeatureModality(dim=2, edges="chain", window=2)
    assert_batched_equals_alone(modality, [rand(5, 2), rand(1, 2, seed=1), rand(9, 2, seed=2)])


@pytest.fixture(params=["text", "vit", "speech"])
def pretrained(request, hf_tokenizer, bert, vit, wav2vec2):
    """A frozen pretrained modality and inputs of mixed lengths or sizes."""
    if request.param == "text":
        return (TextEncoderModality(hf_tokenizer, bert, device="cpu", cache_size=0),
                ["a red square", ["reddish", "squares"], "the cat sat on the mat"])
    if request.param == "vit":
        return ImageEncoderModality(vit, device="cpu", cache_size=0), [rand(3, 40, 40), rand(32, 32), rand(3, 8, 9)]
    return SpeechEncoderModality(wav2vec2, device="cpu", cache_size=0), [noise(400), noise(333, 1), noise(1_000, 2)]


@pytest.mark.parametrize("trainable", [False, True])
def test_pretrained_modalities(pretrained, trainable):
    modality, raws = pretrained
    modality.trainable = trainable
    together = modality.featurize_many(raws)
    for nodes, raw in zip(together, raws, strict=True):
        alone = modality.featurize(raw)
        torch.testing.assert_close(nodes.x, alone.x, rtol=1e-4, atol=1e-5)  # encoder batches pad
        assert torch.equal(nodes.edge_index, alone.edge_index) and nodes.structure == alone.structure
        if not trainable:  # new tensors: the builder validates them, whatever was checked of the inputs
            assert not nodes.validated


class Loud(AudioModality):
    """A subclass featurising its own way: its featurize_many must not bypass it."""

    def featurize(self, raw):
        return super().featurize(raw * 2)


def test_a_subclass_overriding_featurize_is_featurised_by_it():
    clip = noise(1_600)
    assert featurizes_as(AudioModality(), AudioModality) and not featurizes_as(Loud(), AudioModality)
    assert_same_nodes(Loud().featurize_many([clip])[0], AudioModality().featurize(clip * 2))


def test_a_modality_with_featurize_alone_keeps_working():
    class Counts(Modality):
        def featurize(self, raw):
            return FeatureModality(dim=1).featurize(torch.ones(raw, 1))

        def empty(self):
            return FeatureModality(dim=1).empty()

    assert [nodes.num_nodes for nodes in Counts().featurize_many([3, 1, 2])] == [3, 1, 2]


def test_in_groups_calls_once_per_key_and_keeps_the_order():
    calls = []

    def featurize(group):
        calls.append(group)
        return [f"{item}!" for item in group]

    assert in_groups([3, 10, 5, 12, 4], key=lambda item: item < 10, featurize=featurize) == \
        ["3!", "10!", "5!", "12!", "4!"]
    assert calls == [[3, 5, 4], [10, 12]]


@pytest.mark.parametrize("lengths", [[3], [2, 1, 4], [1, 1], [5, 2], [4, 4, 4], [0, 0], [3, 0, 3], [2, 2, 3]])
def test_sequence_positions(lengths):
    """Sequences of one length (fixed-size inputs) and of several."""
    positions = sequence_positions(lengths)
    assert positions.dtype == torch.long and positions.is_contiguous()
    assert positions.tolist() == [i for length in lengths for i in range(length)]


@pytest.mark.parametrize("window,self_loops", [(1, False), (2, True)])
def test_chain_edges_many_equals_chain_edges_of_each_length(window, self_loops):
    lengths = [3, 1, 3, 5, 3, 5]
    many = chain_edges_many(lengths, window, self_loops)
    assert len(many) == len(lengths)
    for edges, length in zip(many, lengths, strict=True):
        assert edges.is_contiguous() and torch.equal(edges, chain_edges(length, window, self_loops))
    assert chain_edges_many([]) == []


def test_chain_edges_many_copies_are_independent():
    first, second = chain_edges_many([4, 4])
    first.add_(100)
    assert torch.equal(second, chain_edges(4))


def test_chain_edges_many_checks_its_lengths():
    with pytest.raises(ValueError, match="chain_edges 'num_nodes' must be an integer >= 0"):
        chain_edges_many([3, -1])


@pytest.mark.parametrize("bad", [
    torch.cat([noise(4_000), torch.tensor([float("nan")])]),  # past its last whole frame: dropped, still refused
    torch.full((2, 900), 3e38),  # finite channels whose mean overflows float32
])
def test_a_clip_with_nan_or_inf_samples_among_clean_ones_is_refused(bad):
    with pytest.raises(ValueError, match=r"Modality 'audio' received samples with \d+ NaN/Inf value\(s\)"):
        AudioModality().featurize_many([noise(800), bad, noise(900, 1)])


def test_loud_but_finite_clips_whose_sum_overflows_are_not_refused_as_nan():
    """The batch's one-sum check falls back to each clip when the sum overflows: each alone is finite."""
    loud = torch.full((800,), 3e38) * torch.tensor([1.0, -1.0]).repeat(400)
    with pytest.raises(ValueError, match=r"received samples as loud as 3e\+38, whose power overflows"):
        AudioModality().featurize_many([loud, loud.flip(0).abs()])


@pytest.mark.parametrize("counts,groups", [
    ([3, 3, 3], [(0, 2), (2, 3)]),
    ([10, 1, 2, 9], [(0, 1), (1, 3), (3, 4)]),  # a clip longer than a group is alone
    ([7], [(0, 1)]),
    ([], []),
    ([1, 5, 1, 1, 6, 5], [(0, 1), (1, 2), (2, 4), (4, 5), (5, 6)]),  # clips of 5 frames or more go alone
    ([2, 2, 2, 2], [(0, 3), (3, 4)]),  # short clips fill a group past 5 frames
])
def test_clips_are_transformed_a_few_frames_at_a_time(counts, groups):
    assert [(group.start, group.stop) for group in audio.frame_groups(counts, 7, alone=5)] == groups


@pytest.mark.parametrize("modality,raw", [
    (AudioModality(n_mels=8), noise(4_000)),
    (AudioModality(n_mels=8), noise(4_000, channels=2)),
    (ImageModality(patch_size=4), rand(3, 8, 8)),  # patch rows moved as machine words
    (ImageModality(patch_size=3), rand(3, 9, 9)),  # moved pixel by pixel
])
def test_inputs_that_require_grad_are_featurised_detached(modality, raw):
    """Featurisation carries no gradient: the same features as the detached input, on every path."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nodes = modality.featurize_many([raw.clone().requires_grad_()])[0]
    assert not nodes.x.requires_grad
    assert_same_nodes(nodes, modality.featurize(raw))
