import pytest
import torch

from graphfuse.backbones import HFVisionEncoder
from graphfuse.backbones.base import image_to_patches, patches_to_images

pytest.importorskip("transformers")


def grid_positions(rows, cols, batch):
    pos = torch.stack(torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij"), -1).reshape(1, -1, 2)
    return pos.expand(batch, -1, -1)


def test_patch_tokens_with_cls_dropped(vit):
    vit.eval()
    encoder = HFVisionEncoder(vit)
    images = torch.randn(2, 3, 32, 32)
    hidden = encoder(images)
    assert encoder.stride == 8 and encoder.image_size == (32, 32) and encoder.grid(32, 32) == (4, 4)
    assert hidden.shape == (2, 16, 32)
    assert torch.equal(hidden, vit(pixel_values=images).last_hidden_state[:, 1:])


def test_node_inputs_rebuild_the_image(vit):
    encoder = HFVisionEncoder(vit).eval()
    images = torch.randn(2, 3, 32, 32)
    patches = torch.stack([image_to_patches(image, 8) for image in images])
    assert patches.shape == (2, 16, 3 * 64)
    assert torch.equal(patches_to_images(patches, 4, 4, 8), images)
    mask = torch.ones(2, 16, dtype=torch.bool)
    assert torch.allclose(encoder.forward_nodes(patches, mask, grid_positions(4, 4, 2)), encoder(images))


def test_a_cnn_is_refused(tiny_cnn):
    with pytest.raises(TypeError, match="expects a transformers model"):
        HFVisionEncoder(tiny_cnn)
