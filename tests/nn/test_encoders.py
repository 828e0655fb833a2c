import contextlib

import pytest
import torch

from graphfuse.debug import debug
from graphfuse.nn import FeatureEncoder, FrameEncoder, NodeEncoders, PatchEncoder, TokenEncoder
from graphfuse.nn.encoders import AUDIO_TIME_WEIGHT, POSITION_STD, sinusoidal_encoding


def test_token_encoder():
    encoder = TokenEncoder(10, 8, max_positions=6)
    ids, pos = torch.tensor([1, 0, 9]), torch.tensor([0, 1, 5])
    out = encoder(ids, pos)
    assert out.shape == (3, 8)
    torch.testing.assert_close(out, encoder.token(ids) + encoder.position(pos))
    assert torch.equal(encoder(torch.tensor([0])), torch.zeros(1, 8))  # the padding id
    with pytest.raises(ValueError, match="long tensor"):
        encoder(torch.randn(3, 4))


@pytest.mark.parametrize("checked", [False, True], ids=["lookup", "debug"])
def test_token_encoder_ids_and_positions_out_of_range_name_the_fix(checked):
    encoder = TokenEncoder(10, 8, max_positions=6)
    ids = torch.tensor([1, 0, 9])
    with debug() if checked else contextlib.nullcontext():
        with pytest.raises(ValueError, match=r"got token ids 1 to 10 but has a vocabulary of 10 \(ids 0 to 9\): "
                                             r"make the batch with the builder the model was created from"):
            encoder(torch.tensor([1, 10]))
        with pytest.raises(ValueError, match=r"got token ids -1 to 2"):
            encoder(torch.tensor([-1, 2]))
        with pytest.raises(ValueError, match=r"token positions 0 to 6 but holds max_positions=6: cap the texts' "
                                             r"length, TextModality\(max_length=6, overflow='truncate'\)"):
            encoder(ids, torch.tensor([0, 1, 6]))
    with pytest.raises(ValueError, match="long tensor"):
        encoder(torch.randn(3, 4))


def test_patch_encoder_lazy():
    encoder = PatchEncoder(-1, 8, max_grid=4)
    x, pos = torch.randn(5, 12), torch.tensor([[0, 0], [0, 1], [1, 0], [3, 3], [2, 1]])
    out = encoder(x, pos)
    assert out.shape == (5, 8) and encoder.proj.in_features == 12
    torch.testing.assert_close(out, encoder.proj(x) + encoder.row(pos[:, 0]) + encoder.col(pos[:, 1]))
    assert encoder(torch.randint(0, 255, (2, 12), dtype=torch.uint8)).dtype == torch.float32
    beyond = torch.tensor([[0, 0], [0, 1], [1, 0], [4, 3], [2, 1]])
    for context in (contextlib.nullcontext(), debug()):
        with context, pytest.raises(ValueError, match=r"got patch rows or columns 0 to 4 but holds max_grid=4 of "
                                                      r"each: at most 4 patches a side"):
            encoder(x, beyond)
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        encoder(x, torch.zeros(5, dtype=torch.long))


def test_frame_and_feature_encoders():
    frames = FrameEncoder(-1, 6)
    x = torch.randn(4, 10)
    plain = frames(x)
    assert plain.shape == (4, 6) and frames.proj.in_features == 10
    by_index = frames(x, pos=torch.arange(4))
    by_time = frames(x, pos=torch.arange(4), time=torch.tensor([[0.0, 0.01], [0.01, 0.02], [0.02, 0.03],
                                                                [0.03, 0.04]]))
    torch.testing.assert_close(by_index, by_time)  # 10 ms frames at time_scale 100 are positions 0..3
    assert not torch.allclose(plain, by_index)
    with pytest.raises(ValueError, match=r"'FrameEncoder' expects \(start, end\) times of shape \[N, 2\], got \(4,\)"):
        frames(x, time=torch.zeros(4))
    features = FeatureEncoder(-1, 5)
    assert features(torch.randn(3, 7)).shape == (3, 5)
    assert FeatureEncoder(7, 5)(torch.randint(0, 3, (2, 7))).shape == (2, 5)
    with pytest.raises(ValueError, match="in_channels"):
        FeatureEncoder(0, 5)


def test_node_encoders_from_builder(fusion_builder, batch):
    encoders = NodeEncoders.from_builder(fusion_builder, 16)
    assert list(encoders) == ["text", "image", "audio"]
    assert isinstance(encoders["text"], TokenEncoder)
    assert isinstance(encoders["image"], PatchEncoder)
    assert isinstance(encoders["audio"], FrameEncoder)
    h = encoders(batch)
    assert {t: tuple(v.shape) for t, v in h.items()} == {t: (batch[t].num_nodes, 16) for t in batch.node_types}
    assert all(torch.isfinite(v).all() for v in h.values())
    sum(v.sum() for v in h.values()).backward()
    assert encoders["image"].proj.weight.grad is not None


def test_node_encoders_missing_features(fusion_builder, batch):
    encoders = NodeEncoders.from_builder(fusion_builder, 4)
    data = batch.clone()
    del data["audio"].x
    with pytest.raises(ValueError, match="'audio'"):
        encoders(data)


def test_position_embeddings_and_audio_time_weight_start_small():
    torch.manual_seed(0)
    patches = PatchEncoder(12, 64, max_grid=32)
    for embedding in (patches.row, patches.col):
        assert abs(embedding.weight.std().item() - POSITION_STD) < 0.2 * POSITION_STD
    with torch.no_grad():
        patches.row.weight.fill_(5.0)
    patches.reset_parameters()
    assert patches.row.weight.abs().max() < 10 * POSITION_STD
    x, pos = torch.randn(4, 10), torch.arange(4)
    for weight in (1.0, AUDIO_TIME_WEIGHT):
        frames = FrameEncoder(10, 6, time_weight=weight)
        with torch.no_grad():
            frames.time_weight.fill_(7.0)
        frames.reset_parameters()
        assert torch.equal(frames.time_weight.detach(), torch.full((6,), weight))
        torch.testing.assert_close(frames(x, pos) - frames(x), weight * sinusoidal_encoding(pos, 6))
    assert FrameEncoder(10, 6).initial_time_weight == 1.0 and AUDIO_TIME_WEIGHT < 1.0


def test_normalised_frames_ignore_gain_and_offset():
    frames = FrameEncoder(10, 6, normalize=True)
    x = torch.randn(4, 10)
    torch.testing.assert_close(frames(3.0 * x - 2.0), frames(x), rtol=1e-4, atol=1e-4)  # loudness, a log-mel offset
    plain = FrameEncoder(10, 6)
    assert not torch.allclose(plain(3.0 * x - 2.0), plain(x))


def test_audio_frames_are_normalised_by_the_builder(fusion_builder):
    encoders = NodeEncoders.from_builder(fusion_builder, 16)
    assert encoders["audio"].normalize and not FrameEncoder(-1, 4).normalize
    assert torch.equal(encoders["audio"].time_weight.detach(), torch.full((16,), AUDIO_TIME_WEIGHT))


def test_positions_and_times_reach_the_default_encoders_of_any_modality():
    from graphfuse import FeatureModality, GraphBuilder

    builder = GraphBuilder({"grid": FeatureModality(6, positions=True, pos_shape=(2,)),
                            "fractional": FeatureModality(6, positions=True, pos_shape=(2,), pos_dtype=torch.float32),
                            "indexed": FeatureModality(6, positions=True),
                            "timed": FeatureModality(6, timed=True),
                            "bare": FeatureModality(6)})
    encoders = NodeEncoders.from_builder(builder, 8)
    assert [type(encoders[t]) for t in builder.node_types] == [PatchEncoder, PatchEncoder, FrameEncoder, FrameEncoder,
                                                               FeatureEncoder]
    x = torch.randn(3, 6)
    grid = encoders["grid"]
    assert not torch.allclose(grid(x, torch.tensor([[0, 0], [1, 2], [2, 1]])), grid(x))
    fractional = encoders["fractional"](x, torch.tensor([[0.5, 0.0], [1.5, 2.0], [0.0, 0.25]]))
    assert fractional.shape == (3, 8) and not torch.allclose(fractional, encoders["fractional"](x))
    assert not torch.allclose(encoders["indexed"](x, torch.tensor([0, 1, 2])), encoders["indexed"](x))


def test_pretrained_hidden_states_are_normalised_and_raw_inputs_are_not(fusion_builder):
    import dataclasses

    from graphfuse.data import GraphSchema, NodeSpec

    patches = PatchEncoder(10, 6, normalize=True)
    x, pos = torch.randn(4, 10), torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
    torch.testing.assert_close(patches(5.0 * x + 3.0, pos), patches(x, pos), rtol=1e-4, atol=1e-4)
    image = NodeSpec("image-encoder", feature_shape=(10,), positions=(2,), pretrained=True)
    tokens = NodeSpec("text-encoder", feature_shape=(10,), positions=(), pretrained=True)
    raw = dataclasses.replace(image, kind="features", pretrained=False)
    encoders = NodeEncoders.from_schema(GraphSchema((("image", image), ("text", tokens), ("raw", raw)), ()), 6)
    assert encoders["image"].normalize and encoders["text"].normalize and not encoders["raw"].normalize
    built_in = NodeEncoders.from_builder(fusion_builder, 6)
    assert not built_in["image"].normalize  # raw pixels keep their scale, as before


@pytest.mark.parametrize("make", [lambda: PatchEncoder(12, 8), lambda: FrameEncoder(12, 8),
                                  lambda: FeatureEncoder(12, 8)], ids=["patch", "frame", "feature"])
def test_features_of_another_width_name_the_builder(make):
    encoder = make()
    assert encoder.in_features == 12
    with pytest.raises(ValueError, match=r"was built for 12 features per node, got features of shape \(3, 48\): make "
                                         r"the batch with the builder the model was created from"):
        encoder(torch.randn(3, 48))
    with pytest.raises(ValueError, match=r"got features of shape \(12,\)"):
        encoder(torch.randn(12))


def test_node_encoders_name_the_node_type_of_features_of_another_width(fusion_builder, batch):
    encoders = NodeEncoders.from_builder(fusion_builder, 16)
    width = batch["image"].x.size(1)
    batch = batch.clone()
    batch["image"].x = torch.randn(batch["image"].num_nodes, width + 1)
    with pytest.raises(ValueError, match=rf"The encoder of node type 'image' was built for {width} features per node"):
        encoders(batch)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_encoders_cast_to_take_features_in_their_parameters_dtype(dtype):
    torch.manual_seed(0)
    x, pos = torch.randn(5, 12), torch.tensor([[0, 0], [0, 1], [1, 0], [3, 3], [2, 1]])
    for encoder, args in ((PatchEncoder(12, 8), (x, pos)), (FrameEncoder(12, 8), (x, pos[:, 0])),
                          (FeatureEncoder(12, 8), (x,))):
        reference = encoder(*args)
        cast = encoder.to(dtype)
        out = cast(*args)
        assert out.dtype == dtype
        torch.testing.assert_close(out.float(), reference, atol=0.05 if dtype == torch.bfloat16 else 1e-6, rtol=0.02)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast casts the float32 projection itself
        assert FeatureEncoder(12, 8)(x).dtype == torch.bfloat16
