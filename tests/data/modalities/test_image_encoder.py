import pytest
import torch
import torch.nn.functional as F

from graphfuse import ImageEncoderModality
from graphfuse.backbones import FeatureMapEncoder, HFVisionEncoder

pytest.importorskip("transformers")


def test_patch_nodes_of_a_resized_normalised_image(vit):
    modality = ImageEncoderModality(vit, mean=(0.5,) * 3, std=(0.5,) * 3, device="cpu")
    assert isinstance(modality.backbone, HFVisionEncoder) and (modality.rows, modality.cols) == (4, 4)
    image = torch.rand(3, 48, 40)
    nodes = modality(image)
    resized = F.interpolate(image[None], size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    expected = vit.eval()(pixel_values=(resized - 0.5) / 0.5).last_hidden_state[0, 1:]
    torch.testing.assert_close(nodes.x, expected)
    assert nodes.pos[:5].tolist() == [[0, 0], [0, 1], [0, 2], [0, 3], [1, 0]] and nodes.structure == ("grid", 4, 4, 4,
                                                                                                        False)
    assert modality(torch.randint(0, 256, (32, 32), dtype=torch.uint8)).x.shape == (16, 32)  # gray, uint8


def test_a_pil_image_is_read(vit):
    image = pytest.importorskip("PIL.Image").new("RGB", (20, 20), (255, 0, 0))
    assert ImageEncoderModality(vit, device="cpu")(image).x.shape == (16, 32)


def test_a_cnn_feature_map_at_its_stride(tiny_cnn):
    modality = ImageEncoderModality(tiny_cnn, trainable=True, image_size=(32, 48))
    assert isinstance(modality.backbone, FeatureMapEncoder) and modality.stride == 8
    nodes = modality(torch.rand(3, 32, 48))
    assert nodes.x.shape == (24, 3 * 64) and nodes.pos[-1].tolist() == [3, 5]


def test_bad_settings_raise(tiny_cnn, vit):
    with pytest.raises(ValueError, match="needs image_size for a FeatureMapEncoder"):
        ImageEncoderModality(tiny_cnn)
    with pytest.raises(ValueError, match="is not a multiple of the encoder's patch size 8"):
        ImageEncoderModality(vit, image_size=36)
    with pytest.raises(ValueError, match="one mean and one positive std per channel"):
        ImageEncoderModality(vit, mean=(0.5,))


def test_a_channels_last_image_names_the_option_of_this_class(vit):
    image = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"received 32 channels in an image of shape \(32, 32, 3\) \(channels last\? "
                                         r"pass ImageEncoderModality\(channels_last=True\), or permute it to "
                                         r"\[C, H, W\]\); expected 3 channels \[C, H, W\], as set by "
                                         r"ImageEncoderModality\(channels=3\)"):
        ImageEncoderModality(vit, device="cpu")(image.numpy())
    channels_last = ImageEncoderModality(vit, device="cpu", channels_last=True)
    expected = ImageEncoderModality(vit, device="cpu")(image.permute(2, 0, 1)).x
    torch.testing.assert_close(channels_last(image.numpy()).x, expected)
    config = channels_last.get_config()
    assert config["channels_last"] is True and ImageEncoderModality.from_config(config).channels_last
    with pytest.raises(ValueError, match=r"expected 3 channels \[H, W, C\], as set by "
                                         r"ImageEncoderModality\(channels=3, channels_last=True\)"):
        channels_last(torch.rand(32, 32, 2))


class PlainCNN(torch.nn.Module):
    """A stride-8 CNN for RGB images, without feature_channels: wrapping it runs it on a probe image."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 4, 8, stride=8)

    def forward(self, x):
        return self.stem(x)


@pytest.mark.parametrize("make_encoder", [
    lambda tiny_cnn, vit: tiny_cnn,  # probed when its stride is read
    lambda tiny_cnn, vit: PlainCNN(),  # probed when wrapped
    lambda tiny_cnn, vit: FeatureMapEncoder(tiny_cnn),  # wrapped for 3 channels
    lambda tiny_cnn, vit: vit,  # config.num_channels
])
def test_a_channel_count_the_encoder_does_not_take_is_refused_at_construction(tiny_cnn, vit, make_encoder):
    with pytest.raises(ValueError, match=r"ImageEncoderModality\(channels=1\) feeds the encoder 1-channel images, but "
                                         r"the encoder takes 3 input channels; pass channels=3 \(with one mean and std "
                                         r"per channel\): one-channel \(grayscale\) images are repeated to 3 channels"):
        ImageEncoderModality(make_encoder(tiny_cnn, vit), image_size=16, channels=1, mean=(0.5,), std=(0.5,))


@pytest.mark.parametrize("make_encoder", [lambda tiny_cnn: tiny_cnn, lambda tiny_cnn: PlainCNN()])
def test_grayscale_images_go_to_an_rgb_cnn_with_three_channels(tiny_cnn, make_encoder):
    modality = ImageEncoderModality(make_encoder(tiny_cnn), image_size=16, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3)
    gray = torch.rand(16, 16)
    torch.testing.assert_close(modality(gray).x, modality(gray.expand(3, 16, 16)).x)
