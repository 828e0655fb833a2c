"""What the pretrained-encoder modalities share: frozen features computed once, batched, saved and loaded."""
import json

import pytest
import torch

from graphfuse import ImageEncoderModality, SpeechEncoderModality, TextEncoderModality
from graphfuse.backbones import BACKBONES, FeatureMapEncoder

pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")


def waves(*lengths):
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(length, generator=generator) for length in lengths]


@pytest.fixture
def registered_cnn(tiny_cnn):
    """The tiny CNN under a registered name, so that a FeatureMapEncoder of it can be saved."""
    BACKBONES.register("test-tiny-cnn", lambda: tiny_cnn)
    yield "test-tiny-cnn"
    BACKBONES.unregister("test-tiny-cnn")


@pytest.fixture(params=["text", "vit", "cnn", "speech"])
def case(request, hf_tokenizer, bert, vit, registered_cnn, wav2vec2):
    """(make(trainable, **kwargs) -> modality, raw inputs with a repeat, the backbone's input module)."""
    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 40, 40, generator=generator), torch.randint(0, 256, (28, 28), dtype=torch.uint8,
                                                                         generator=generator)]
    return {
        "text": (lambda **kw: TextEncoderModality(hf_tokenizer, bert, device="cpu", **kw),
                 ["a red square", "the cat sat on the mat", "a blue circle", "a red square"]),
        "vit": (lambda **kw: ImageEncoderModality(vit, device="cpu", **kw), [*images, images[0]]),
        "cnn": (lambda **kw: ImageEncoderModality(FeatureMapEncoder(registered_cnn), image_size=32,
                                                    device="cpu", **kw), [*images, images[0]]),
        "speech": (lambda **kw: SpeechEncoderModality(wav2vec2, device="cpu", **kw), [*waves(400, 400, 333),
                                                                                        waves(400)[0]]),
    }[request.param]


def counting(modality):
    calls = []
    forward_nodes = modality.backbone.forward_nodes

    def counted(x, mask, pos=None):
        calls.append(x.size(0))
        return forward_nodes(x, mask, pos)

    modality.backbone.forward_nodes = counted
    return calls


def test_frozen_features_are_computed_once(case):
    make, raws = case
    modality = make()
    calls = counting(modality)
    first = modality.featurize(raws[0])
    assert first.x.dtype == torch.float32 and first.x.shape[1] == modality.backbone.out_channels and calls == [1]
    assert torch.equal(modality.featurize(raws[0]).x, first.x) and calls == [1]
    assert torch.equal(modality.featurize(raws[-1]).x, first.x) and calls == [1]  # the same content again


def test_featurize_many_batches_and_equals_featurize(case):
    make, raws = case
    batched = make(batch_size=8)
    calls = counting(batched)
    many = batched.featurize_many(raws)
    assert sum(calls) == len(raws) - 1  # the repeat is encoded once
    assert len(calls) == (2 if isinstance(batched, SpeechEncoderModality) else 1)  # speech batches equal lengths
    single = make(cache_size=0)
    for nodes, raw in zip(many, raws, strict=True):
        alone = single.featurize(raw)
        torch.testing.assert_close(nodes.x, alone.x, atol=1e-5, rtol=1e-4)
        assert torch.equal(nodes.edge_index, alone.edge_index) and nodes.structure == alone.structure


def test_trainable_nodes_carry_the_backbone_inputs(case):
    make, raws = case
    modality = make(trainable=True)
    calls = counting(modality)
    nodes = modality.featurize(raws[0])
    spec = modality.node_spec()
    assert calls == [] and spec.backbone is modality.backbone and nodes.structure is not None
    assert tuple(nodes.x.shape[1:]) == spec.feature_shape and nodes.x.dtype == modality.empty().x.dtype
    frozen = make().featurize(raws[0])
    assert nodes.num_nodes == frozen.num_nodes and torch.equal(nodes.pos, frozen.pos)
    assert make().node_spec().backbone is None
    assert make().node_spec().feature_shape == (modality.backbone.out_channels,)


def test_config_and_assets_rebuild_the_same_features(case, tmp_path):
    make, raws = case
    modality = make()
    config = json.loads(json.dumps(modality.get_config()))
    modality.save_assets(tmp_path)
    weights = tmp_path / f"{modality.name}.backbone.safetensors"  # named by the modality: several can share a folder
    assert config["weights"] == weights.name and weights.is_file()
    rebuilt = type(modality).from_config(config, tmp_path)
    assert rebuilt.node_spec() == modality.node_spec()
    torch.testing.assert_close(rebuilt.featurize(raws[1]).x, modality.featurize(raws[1]).x)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="backbone.safetensors are missing"):
        type(modality).from_config(config, tmp_path)


def test_a_cnn_given_by_instance_cannot_be_saved(tiny_cnn):
    modality = ImageEncoderModality(FeatureMapEncoder(tiny_cnn), image_size=32)
    with pytest.raises(ValueError, match="can save only a module given by its registered name"):
        modality.get_config()
