"""Patch cutting shared by the image modality and the image encoders."""
import pytest
import torch

from graphfuse.backbones.base import image_to_patches, images_to_patches, patches_to_images


def reference_patches(images, stride):
    """Row-major patches, channel-major within a patch, pixel by pixel."""
    batch, channels, height, width = images.shape
    rows, cols = height // stride, width // stride
    out = torch.empty(batch, rows * cols, channels * stride * stride, dtype=images.dtype)
    for b in range(batch):
        for r in range(rows):
            for c in range(cols):
                patch = images[b, :, r * stride:(r + 1) * stride, c * stride:(c + 1) * stride]
                out[b, r * cols + c] = patch.reshape(-1)
    return out


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.float32, torch.float64, torch.bool])
@pytest.mark.parametrize("stride", [1, 2, 3, 4, 8])
def test_images_to_patches_moves_every_pixel_to_its_patch(dtype, stride):
    images = torch.randint(0, 256, (2, 3, 2 * stride, 3 * stride), generator=torch.Generator().manual_seed(stride))
    images = images.to(dtype)
    torch.testing.assert_close(images_to_patches(images, stride), reference_patches(images, stride), rtol=0, atol=0)


@pytest.mark.parametrize("images", [
    torch.arange(2 * 3 * 10 * 9, dtype=torch.uint8).view(2, 3, 10, 9),  # sides past whole patches: dropped
    torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8).transpose(2, 3),  # not contiguous
    torch.arange(1 + 2 * 3 * 8 * 8, dtype=torch.uint8)[1:].view(2, 3, 8, 8),  # storage not word-aligned
])
def test_images_to_patches_of_uneven_strided_or_offset_images(images):
    torch.testing.assert_close(images_to_patches(images, 4), reference_patches(images, 4), rtol=0, atol=0)


def test_patches_to_images_inverts_image_to_patches():
    image = torch.rand(3, 8, 12)
    patches = image_to_patches(image, 4)
    assert patches.shape == (6, 48)
    torch.testing.assert_close(patches_to_images(patches.unsqueeze(0), 2, 3, 4)[0], image, rtol=0, atol=0)
