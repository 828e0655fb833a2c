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
