import pytest
import torch

from graphfuse.backbones import BACKBONES, FeatureMapEncoder, backbone_from_config, backbone_to_config
from graphfuse.backbones.base import image_to_patches
from graphfuse.checkpoint import CheckpointError


def test_feature_map_positions_become_nodes(tiny_cnn):
    encoder = FeatureMapEncoder(tiny_cnn)
    images = torch.randn(2, 3, 32, 48)
    hidden = encoder(images)
    fmap = tiny_cnn.forward_features(images)
    assert encoder.out_channels == 16 and encoder.grid(32, 48) == (4, 6) and encoder.stride_for(32, 48) == 8
    assert hidden.shape == (2, 24, 16)
    assert torch.equal(hidden[:, 1 * 6 + 2], fmap[:, :, 1, 2])  # row-major
    patches = torch.stack([image_to_patches(image, 8) for image in images])
    pos = torch.stack(torch.meshgrid(torch.arange(4), torch.arange(6), indexing="ij"), -1).reshape(1, -1, 2)
    assert torch.allclose(encoder.forward_nodes(patches, torch.ones(2, 24, dtype=torch.bool), pos.expand(2, -1, -1)),
                          hidden)


def test_a_module_without_forward_features_is_called_and_probed():
    module = torch.nn.Conv2d(3, 5, 4, stride=4)
    encoder = FeatureMapEncoder(module)
    assert encoder.out_channels == 5 and encoder(torch.randn(1, 3, 8, 8)).shape == (1, 4, 5)
    assert module.training  # the probe leaves the mode as it was


@pytest.mark.parametrize("module", [torch.nn.Flatten(), torch.nn.Sequential(torch.nn.Conv2d(3, 4, 4, 4),
                                                                              torch.nn.Flatten(2))])
def test_an_output_that_is_not_a_feature_map_raises(module):
    with pytest.raises(ValueError, match=r"expects its module to return a feature map \[B, D, h, w\]"):
        FeatureMapEncoder(module, out_channels=4)(torch.randn(1, 3, 8, 8))


def test_a_grid_that_does_not_tile_the_image_raises(tiny_cnn):
    with pytest.raises(ValueError, match=r"a 36x36 image to a \(4, 4\) grid, which does not tile it into 8x8 patches"):
        FeatureMapEncoder(tiny_cnn).stride_for(36, 36)


def test_only_a_registered_module_saves(tiny_cnn):
    with pytest.raises(ValueError, match="can save only a module given by its registered name"):
        FeatureMapEncoder(tiny_cnn).get_config()
    BACKBONES.register("tiny-test-cnn", lambda width=16: torch.nn.Conv2d(3, width, 8, stride=8))
    try:
        encoder = FeatureMapEncoder("tiny-test-cnn", module_kwargs={"width": 6})
        config = backbone_to_config(encoder)
        assert config == {"type": "feature-map", "config": {"module": "tiny-test-cnn", "module_kwargs": {"width": 6},
                                                             "in_channels": 3, "out_channels": 6,
                                                             "stride": None}}
        rebuilt = backbone_from_config(config)
        assert isinstance(rebuilt, FeatureMapEncoder) and rebuilt.out_channels == 6
    finally:
        BACKBONES.unregister("tiny-test-cnn")


@pytest.mark.parametrize("other, match", [
    (torch.nn.Conv2d(3, 5, 4, stride=4), r"wrong shape: .*'module.weight \(16, 3, 8, 8\) \(backbone: \(5, 3, 4, 4\)\)"),
    (torch.nn.Conv2d(3, 16, 8, stride=8, bias=False), r"unexpected: \['module.bias'\]"),
], ids=["another shape", "a tensor the backbone lacks"])
def test_weights_of_another_backbone_are_refused_naming_the_file_and_tensor(other, match, tmp_path):
    path = tmp_path / "w.safetensors"
    FeatureMapEncoder(torch.nn.Conv2d(3, 16, 8, stride=8)).save_weights(path)
    with pytest.raises(CheckpointError, match=match) as raised:  # a shape was a raw RuntimeError of torch
        FeatureMapEncoder(other).load_weights(path)
    assert str(path) in str(raised.value) and "saved from a different backbone" in str(raised.value)
