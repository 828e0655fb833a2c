"""Properties of the featurizers over generated input (hypothesis): any shape, dtype and magnitude,
empty and one-node inputs, very long inputs. Each raw input gives either a node set that matches
the modality's empty() (dtype, trailing shapes, attributes), holds only finite values and valid
edges, or a ValueError / TypeError naming the modality."""
import math

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from properties import assert_finite, lengths, outcome, rarely, raw_tensors

from graphfuse.data import (
    AudioModality,
    FeatureModality,
    GraphBuilder,
    ImageEncoderModality,
    ImageModality,
    TextModality,
    Tokenizer,
)
from graphfuse.data.nodes import NODE_ATTRIBUTES

pytestmark = pytest.mark.usefixtures("one_thread")
TOKENIZER = Tokenizer.from_corpus(["the cat sat on the mat", "a red square, a blue circle!", "ünïcödé wörds"])


def featurized(modality, raw):
    """The node set of ``raw``, checked against the modality, or ``None`` after a documented error."""
    nodes, _ = outcome(modality.featurize, raw, names=(f"'{modality.name}'",))
    if nodes is None:
        return None
    empty = modality.empty()
    assert nodes.num_nodes >= 1
    for attribute in NODE_ATTRIBUTES:
        value, expected = getattr(nodes, attribute), getattr(empty, attribute)
        assert (value is None) == (expected is None), attribute
        if value is not None:
            assert value.dtype == expected.dtype and value.shape[1:] == expected.shape[1:], attribute
            assert value.size(0) == nodes.num_nodes, attribute
    assert_finite(nodes.x, "x")
    if nodes.time is not None:
        known = ~nodes.time.isnan().any(dim=1)
        assert_finite(nodes.time[known], "known time spans")
    assert nodes.validate(modality.name) is nodes
    return nodes


# --- images ---------------------------------------------------------------------------------------

@st.composite
def images(draw):
    ndim = draw(st.sampled_from([1, 2, 3, 3, 3, 4]))
    sides = st.one_of(st.integers(0, 13), st.integers(200, 700))
    shape = [draw(st.integers(1, 4)) if ndim >= 3 else None, draw(sides), draw(st.integers(0, 13))]
    shape = {1: shape[1:2], 2: shape[1:], 3: shape, 4: [2, *shape]}[ndim]
    return draw(raw_tensors(tuple(shape)))


@given(patch=st.integers(1, 5), channels=st.sampled_from([1, 3]), neighbourhood=st.sampled_from([4, 8]),
       size_policy=st.sampled_from(["pad", "error"]), channels_last=st.booleans(), raw=images())
@example(patch=1, channels=1, neighbourhood=4, size_policy="pad", channels_last=False,  # was inf features
         raw=torch.tensor([[1.541e300]], dtype=torch.float64))
def test_image_patches(patch, channels, neighbourhood, size_policy, channels_last, raw):
    modality = ImageModality(patch, channels, neighbourhood, size_policy=size_policy, channels_last=channels_last)
    nodes = featurized(modality, raw)
    if nodes is not None:
        height, width = raw.shape[:2] if channels_last and raw.ndim == 3 else raw.shape[-2:]
        rows, cols = math.ceil(height / patch), math.ceil(width / patch)
        assert nodes.x.shape == (rows * cols, channels * patch * patch)
        assert nodes.structure == ("grid", rows, cols, neighbourhood, False)


@given(trainable=st.booleans(), channels=st.sampled_from([1, 3]), raw=images())
def test_image_encoder_nodes_through_the_builder(trainable, channels, raw):
    """A frozen encoder's hidden states are checked where node sets are (the builder), so a pixel value
    the network turns into inf is refused there by name."""
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv2d(channels, 4, 4, stride=4), torch.nn.ReLU())
    modality = ImageEncoderModality(network, trainable, image_size=8, mean=(0.5,) * channels, std=(0.25,) * channels,
                                    channels=channels, cache_size=0)
    builder = GraphBuilder({"image": modality})
    nodes, _ = outcome(builder.featurize, {"image": raw}, names=("'image'",))
    if nodes is not None:
        assert nodes["image"].num_nodes == 4
        assert_finite(nodes["image"].x, "x")


# --- audio ----------------------------------------------------------------------------------------

@st.composite
def waveforms(draw):
    length = draw(lengths(long=(1_000, 200_000)))
    shape = draw(rarely(st.sampled_from([(length,), (draw(st.integers(1, 3)), length)]),
                        st.sampled_from([(), (2, 2, length), (length, 2)])))
    waveform = draw(raw_tensors(shape))
    wrapper = draw(st.sampled_from(["bare", "tuple", "mapping", "datasets"]))
    if wrapper == "bare":
        return waveform
    rate = draw(rarely(st.sampled_from([16000, 8000, 44100, 16000.0]),
                       st.sampled_from([999, 0, -1, 1.5, True, "16k", None])))
    return {"tuple": (waveform, rate), "mapping": {"waveform": waveform, "sample_rate": rate},
            "datasets": {"array": waveform, "sampling_rate": rate, "path": None}}[wrapper]


@given(n_mels=st.integers(1, 40), window=st.integers(1, 3), raw=waveforms())
@example(n_mels=1, window=1, raw=torch.tensor([1.5449e30, -2.9339e29], dtype=torch.bfloat16))  # was NaN features
def test_audio_frames(n_mels, window, raw):
    nodes = featurized(AudioModality(n_mels=n_mels, window=window), raw)
    if nodes is not None:
        assert torch.equal(nodes.pos, torch.arange(nodes.num_nodes))
        assert bool((nodes.time[:, 1] > nodes.time[:, 0]).all())


def test_values_beyond_float32_are_refused_by_name():
    """Found by the properties above: float64 pixels, samples or features past float32's range became
    inf when cast, and a float32 waveform louder than ~1e15 gave NaN log-mel features."""
    huge = torch.full((4, 4), 1e300, dtype=torch.float64)
    beyond = r"received {} as large as 1e\+300, beyond float32's range \(\+-3.4e\+38\); rescale them"
    with pytest.raises(ValueError, match=f"Modality 'image' {beyond.format('pixels')}"):
        ImageModality(channels=1).featurize(huge)
    with pytest.raises(ValueError, match=f"Modality 'features' {beyond.format('features')}"):
        FeatureModality(dim=4).featurize(huge)
    with pytest.raises(ValueError, match=f"Modality 'audio' {beyond.format('samples')}"):
        AudioModality().featurize(huge[0].repeat(100))
    with pytest.raises(ValueError, match=r"Modality 'audio' received samples as loud as 1e\+20, whose power overflows "
                                         r"float32; scale the waveform to \[-1, 1\]"):
        AudioModality().featurize(torch.full((1000,), 1e20))
    assert torch.isfinite(AudioModality().featurize(torch.full((1000,), 1e12)).x).all()


# --- text -----------------------------------------------------------------------------------------

WORDS = st.sampled_from(["the", "cat", "mat", ",", "!", "ünïcödé", "zebra", "", " ", "\x00", "a b"])
TEXTS = st.one_of(st.text(max_size=40), st.lists(WORDS, max_size=20).map(" ".join),
                  st.integers(1, 5_000).map(lambda n: "the cat sat. " * n))
SPANS = st.one_of(
    st.lists(st.tuples(st.floats(0, 100), st.floats(0, 10)).map(lambda pair: [pair[0], pair[0] + pair[1]]),
             max_size=12),
    st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=3), max_size=12),
    st.sampled_from(["spans", None, 3, [[0.0, 1.0]] * 3]))


@st.composite
def texts(draw):
    kind = draw(st.sampled_from(["string", "tokens", "text mapping", "tokens mapping", "other"]))
    if kind == "string":
        return draw(TEXTS)
    tokens = draw(st.lists(st.one_of(WORDS, st.text(max_size=5)), max_size=12))
    if kind == "tokens":
        return tokens
    if kind == "other":
        return draw(st.sampled_from([None, 3, 2.5, b"bytes", ["a", 3], {"text": "a", "other": 1}, {}]))
    content = {"text": draw(TEXTS)} if kind == "text mapping" else {"tokens": tokens}
    return {**content, "spans": draw(SPANS)} if draw(st.booleans()) else content


@given(max_length=st.one_of(st.none(), st.integers(1, 6)), overflow=st.sampled_from(["truncate", "error"]),
       window=st.integers(1, 3), self_loops=st.booleans(), spans=st.booleans(), raw=texts())
def test_text_tokens(max_length, overflow, window, self_loops, spans, raw):
    modality = TextModality(TOKENIZER, max_length, overflow, window, self_loops, spans)
    nodes = featurized(modality, raw)
    if nodes is not None:
        assert max_length is None or nodes.num_nodes <= max_length
        assert 0 <= int(nodes.x.min()) and int(nodes.x.max()) < len(TOKENIZER)
        assert torch.equal(nodes.pos, torch.arange(nodes.num_nodes))


# --- precomputed features -------------------------------------------------------------------------

@given(dim=st.integers(1, 4), positions=st.booleans(), timed=st.booleans(), edges=st.sampled_from([None, "chain"]),
       window=st.integers(1, 3), data=st.data())
def test_feature_rows(dim, positions, timed, edges, window, data):
    rows = data.draw(lengths(short=6, long=(1_000, 5_000)), "rows")
    width = data.draw(st.sampled_from([dim, dim, dim + 1]), "width")
    x = data.draw(raw_tensors((rows, width) if data.draw(st.booleans()) else (rows,)), "x")
    raw = {"x": x}
    if positions or data.draw(st.booleans()):
        raw["pos"] = data.draw(raw_tensors((data.draw(st.sampled_from([rows, rows + 1])),)), "pos")
    if timed or data.draw(st.booleans()):
        start = data.draw(raw_tensors((rows,), scales=(1.0, 1e5, 1e30)), "start")
        raw["time"] = torch.stack([torch.as_tensor(start).double(), torch.as_tensor(start).double() + 1], 1)
    modality = FeatureModality(dim, positions=positions, timed=timed, edges=edges, window=window)
    featurized(modality, raw if len(raw) > 1 or data.draw(st.booleans()) else x)
