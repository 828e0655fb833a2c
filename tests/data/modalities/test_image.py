import math

import numpy as np
import pytest
import torch

from graphfuse.data import ImageModality


def random_image(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def patches_reference(image, p):
    """Brute force: one row per patch, row-major, pixels channel-major inside a patch."""
    channels, height, width = image.shape
    features, positions = [], []
    for row in range(height // p):
        for col in range(width // p):
            features.append(image[:, row * p:(row + 1) * p, col * p:(col + 1) * p].reshape(-1))
            positions.append((row, col))
    return torch.stack(features), torch.tensor(positions)


@pytest.mark.parametrize("channels, height, width, p", [(3, 8, 12, 4), (1, 6, 6, 3), (2, 5, 10, 5), (3, 4, 4, 1)])
def test_patches_match_brute_force(channels, height, width, p):
    image = random_image(channels, height, width)
    nodes = ImageModality(patch_size=p, channels=channels)(image)
    x, pos = patches_reference(image, p)
    assert nodes.x.dtype == torch.float32 and nodes.pos.dtype == torch.long
    assert nodes.x.shape == (height // p * (width // p), channels * p * p)
    assert torch.equal(nodes.x, x)
    assert torch.equal(nodes.pos, pos)
    assert nodes.time is None
    nodes.validate("image")


def test_channel_major_inside_a_patch():
    # Pixel value = 100 * channel + 10 * row + col, so each feature names where it came from.
    channel, row, col = torch.meshgrid(torch.arange(2), torch.arange(2), torch.arange(2), indexing="ij")
    image = (100 * channel + 10 * row + col).float()
    nodes = ImageModality(patch_size=2, channels=2)(image)
    assert nodes.x.tolist() == [[0, 1, 10, 11, 100, 101, 110, 111]]


def test_uint8_scaled_to_unit_range():
    pixels = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    pixels[0, 0, 0], pixels[0, 0, 1] = 0, 255
    from_uint8 = ImageModality(patch_size=4)(pixels)
    from_float = ImageModality(patch_size=4)(pixels.float() / 255)
    assert torch.allclose(from_uint8.x, from_float.x, atol=1e-7, rtol=0)
    assert from_uint8.x.min() == 0.0 and from_uint8.x.max() == 1.0


@pytest.mark.parametrize("convert", [np.asarray, lambda image: image.double(), lambda image: image.half()])
def test_arrays_and_other_float_dtypes(convert):
    image = random_image(3, 8, 8)
    nodes = ImageModality(patch_size=4)(convert(image))
    assert nodes.x.dtype == torch.float32
    assert torch.allclose(nodes.x, patches_reference(image, 4)[0], atol=1e-3)


def test_two_dimensional_image():
    image = random_image(8, 12)
    grey = ImageModality(patch_size=4, channels=1)(image)
    assert torch.equal(grey.x, patches_reference(image[None], 4)[0])
    # With channels=3 a one-channel image ([H, W] or [1, H, W]) is repeated to three channels.
    colour = ImageModality(patch_size=4, channels=3)
    expected = patches_reference(image.expand(3, -1, -1), 4)[0]
    assert torch.equal(colour(image).x, expected)
    assert torch.equal(colour(image[None]).x, expected)


@pytest.mark.parametrize("height, width", [(7, 12), (8, 9), (5, 5), (1, 1)])
def test_pad_policy(height, width):
    p = 4
    image = random_image(1, height, width) + 0.5  # no pixel is zero
    nodes = ImageModality(patch_size=p, channels=1)(image)
    rows, cols = math.ceil(height / p), math.ceil(width / p)
    assert nodes.num_nodes == rows * cols
    padded = torch.zeros(1, rows * p, cols * p)
    padded[:, :height, :width] = image
    x, pos = patches_reference(padded, p)
    assert torch.equal(nodes.x, x)
    assert torch.equal(nodes.pos, pos)
    assert int((nodes.x == 0).sum()) == rows * cols * p * p - height * width


def test_error_size_policy():
    modality = ImageModality(patch_size=4, size_policy="error")
    assert modality(random_image(3, 8, 12)).num_nodes == 6
    with pytest.raises(ValueError, match="Modality 'image' received a 7x12 image, not divisible into 4x4 patches; "
                                         "resize or crop it, or use size_policy='pad'"):
        modality(random_image(3, 7, 12))


def edge_list(edge_index):
    return [tuple(edge) for edge in edge_index.t().tolist()]


@pytest.mark.parametrize("neighbourhood, num_edges", [(4, 168), (8, 312)])
def test_grid_edges_7x7(neighbourhood, num_edges):
    nodes = ImageModality(patch_size=2, channels=1, neighbourhood=neighbourhood)(random_image(14, 14))
    assert nodes.num_nodes == 49
    assert nodes.edge_index.dtype == torch.long
    edges = edge_list(nodes.edge_index)
    edge_set = set(edges)
    assert len(edges) == num_edges == len(edge_set)
    pos = nodes.pos.tolist()
    for i, j in edges:
        assert i != j and (j, i) in edge_set
        assert abs(pos[i][0] - pos[j][0]) <= 1 and abs(pos[i][1] - pos[j][1]) <= 1
    reference = {(i, j) for i in range(49) for j in range(49) if i != j
                 and abs(pos[i][0] - pos[j][0]) <= 1 and abs(pos[i][1] - pos[j][1]) <= 1
                 and (neighbourhood == 8 or pos[i][0] == pos[j][0] or pos[i][1] == pos[j][1])}
    assert edge_set == reference


def test_grid_self_loops():
    image = random_image(8, 12)
    plain = ImageModality(patch_size=4, channels=1)(image)
    looped = ImageModality(patch_size=4, channels=1, self_loops=True)(image)
    assert set(edge_list(looped.edge_index)) == set(edge_list(plain.edge_index)) | {(i, i) for i in range(6)}
    assert looped.num_edges == plain.num_edges + 6


@pytest.mark.parametrize("raw, error, match", [
    (random_image(2, 3, 8, 8), ValueError,
     r"received a 4-D tensor of shape \(2, 3, 8, 8\) \(a batch\? pass one image per sample\); expected \[C, H, W\]"),
    (random_image(8), ValueError, r"received a 1-D tensor of shape \(8,\); expected \[C, H, W\] or \[H, W\]"),
    (torch.empty(3, 0, 8), ValueError, r"received an empty image of shape \(3, 0, 8\)"),
    (torch.empty(0, 8, 8), ValueError, r"received an empty image of shape \(0, 8, 8\)"),
    (torch.tensor([[0.5, float("nan")], [0.1, 0.2]]), ValueError, "received pixels with 1 NaN/Inf value"),
    (torch.tensor([[0.5, float("inf")], [0.1, 0.2]]), ValueError, "received pixels with 1 NaN/Inf value"),
    (torch.zeros(8, 8, dtype=torch.int32), TypeError, "received pixels of dtype torch.int32; expected uint8"),
    (torch.zeros(8, 8, dtype=torch.bool), TypeError, "received pixels of dtype torch.bool; expected uint8"),
    (random_image(2, 8, 8), ValueError,
     r"received 2 channels in an image of shape \(2, 8, 8\); expected 3 channels \[C, H, W\], as set by "
     r"ImageModality\(channels=3\)"),
    (random_image(8, 8, 3), ValueError,
     r"received 8 channels in an image of shape \(8, 8, 3\) \(channels last\? pass "
     r"ImageModality\(channels_last=True\), or permute it to \[C, H, W\]\)"),
    ("pixels", TypeError, r"received str; expected an image tensor or array \[C, H, W\] or \[H, W\]"),
])
def test_bad_images(raw, error, match):
    with pytest.raises(error, match=f"Modality 'image' {match}"):
        ImageModality(patch_size=4, channels=3)(raw)


def test_channels_last_images_give_the_nodes_of_their_channels_first_twin():
    image = random_image(3, 8, 12)
    modality = ImageModality(patch_size=4, channels=3, channels_last=True)
    for raw in (image.permute(1, 2, 0), image.permute(1, 2, 0).numpy()):
        assert torch.equal(modality(raw).x, ImageModality(patch_size=4, channels=3)(image).x)
    assert torch.equal(modality(image[0]).x, ImageModality(patch_size=4, channels=3)(image[0]).x)  # [H, W] as before
    assert repr(modality).endswith("size_policy='pad', channels_last=True)")


def test_channels_last_images_with_the_wrong_channel_count_name_the_layout():
    with pytest.raises(ValueError, match=r"received 2 channels in an image of shape \(8, 8, 2\); expected 3 channels "
                                         r"\[H, W, C\], as set by ImageModality\(channels=3, channels_last=True\)"):
        ImageModality(patch_size=4, channels=3, channels_last=True)(random_image(8, 8, 2))


def test_wrong_channel_count_without_channels_last_hint():
    with pytest.raises(ValueError, match="received 2 channels") as info:
        ImageModality(patch_size=4, channels=3)(random_image(2, 8, 8))
    assert "channels last" not in str(info.value)


@pytest.mark.parametrize("kwargs, match", [
    ({"patch_size": 0}, "ImageModality 'patch_size' must be an integer >= 1"),
    ({"patch_size": 2.0}, "ImageModality 'patch_size' must be an integer >= 1"),
    ({"channels": 0}, "ImageModality 'channels' must be an integer >= 1"),
    ({"neighbourhood": 6}, r"ImageModality 'neighbourhood' must be one of \(4, 8\)"),
    ({"size_policy": "crop"}, r"ImageModality 'size_policy' must be one of \('pad', 'error'\)"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImageModality(**kwargs)


def test_empty_node_set():
    modality = ImageModality(patch_size=3, channels=2)
    empty = modality.empty()
    assert empty.x.shape == (0, 18) and empty.x.dtype == torch.float32
    assert empty.pos.shape == (0, 2) and empty.pos.dtype == torch.long
    assert empty.edge_index.shape == (2, 0) and empty.time is None
    assert modality.feature_dim == modality(random_image(2, 6, 6)).x.size(1) == 18
    empty.validate("image")


def test_registration_and_repr():
    modality = ImageModality(patch_size=8, channels=1, neighbourhood=8)
    assert (modality.name, modality.relation) == ("image", "grid")
    assert repr(modality) == "ImageModality(patch_size=8, channels=1, neighbourhood=8, size_policy='pad')"


@pytest.mark.parametrize("mode, channels", [("RGB", 3), ("L", 1), ("RGBA", 3), ("P", 3), ("L", 3)])
def test_pil_images_are_read_channels_last(mode, channels):
    image_module = pytest.importorskip("PIL.Image")
    pixels = np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    rgb = image_module.fromarray(pixels, "RGB")
    image = rgb if mode == "RGB" else rgb.convert(mode)
    modality = ImageModality(patch_size=4, channels=channels)
    reference = np.asarray(image.convert("L" if channels == 1 or mode == "L" else "RGB"), dtype=np.uint8)
    reference = torch.from_numpy(reference.copy())
    reference = reference.unsqueeze(0) if reference.dim() == 2 else reference.permute(2, 0, 1)
    assert torch.equal(modality(image).x, modality(reference).x)


@pytest.mark.parametrize("channels", [1, 3])
def test_a_floating_pil_image_is_read_as_its_pixels(channels):
    image_module = pytest.importorskip("PIL.Image")
    pixels = np.random.default_rng(0).random((8, 12), dtype=np.float32) * 2.0 - 0.5  # outside [0, 1] too
    image = image_module.fromarray(pixels)
    assert image.mode == "F"
    modality = ImageModality(patch_size=4, channels=channels)
    assert torch.equal(modality(image).x, modality(torch.from_numpy(pixels)).x)


@pytest.mark.parametrize("mode, bits, to_image", [
    ("I;16", "16-bit", lambda module, pixels: module.fromarray(pixels)),
    ("I;16B", "16-bit", lambda module, pixels: module.fromarray(pixels.astype(">u2"))),
    ("I", "32-bit", lambda module, pixels: module.fromarray(pixels).convert("I")),
])
def test_an_integer_pil_image_is_refused_with_how_to_convert_it(mode, bits, to_image):
    """Converted to 8 bits (mode L), these pixels would be clipped to 255."""
    image_module = pytest.importorskip("PIL.Image")
    pixels = np.arange(96, dtype=np.uint16).reshape(8, 12) * 600
    image = to_image(image_module, pixels)
    assert image.mode == mode
    modality = ImageModality(patch_size=4, channels=1)
    with pytest.raises(TypeError, match=rf"Modality 'image' received a PIL image of mode '{mode}' \({bits} integer "
                                        r"pixels\), which converting to 8 bits would clip; pass floating pixels in "
                                        r"\[0, 1\] instead, e\.g\. numpy\.asarray\(image, dtype=numpy\.float32\) / "
                                        r"65535"):
        modality(image)
    converted = np.asarray(image, dtype=np.float32) / 65535  # what the message says to do
    assert torch.equal(modality(converted).x, modality(torch.from_numpy(pixels / np.float32(65535))).x)
