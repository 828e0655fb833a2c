"""Images -> patch nodes carrying a pretrained vision encoder's hidden states (frozen or fine-tuned)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from graphfuse.backbones import Backbone, FeatureMapEncoder, HFVisionEncoder
from graphfuse.backbones.base import image_to_patches
from graphfuse.checks import check_bool, check_choice, check_int, check_number, check_shape
from graphfuse.data.edges import grid_edges
from graphfuse.data.modalities.base import register_modality
from graphfuse.data.modalities.image import read_image
from graphfuse.data.modalities.pretrained import PretrainedModality
from graphfuse.data.nodes import NodeSet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _as_backbone(encoder: Any, channels: int, layer: int | None) -> Backbone:
    if isinstance(encoder, Backbone):
        return encoder
    if getattr(getattr(encoder, "config", None), "patch_size", None) is not None or not isinstance(encoder,
                                                                                               torch.nn.Module):
        return HFVisionEncoder(encoder, layer)  # a ViT-style transformers model, or a local folder
    return FeatureMapEncoder(encoder, in_channels=channels)


def _raise_if_channels_differ(encoder: Any, channels: int, error: RuntimeError) -> None:
    """Explains ``error``, raised by a probe run of a CNN on ``channels``-channel images, when the first
    convolution of the CNN (its stem) takes another number of channels."""
    module = encoder.module if isinstance(encoder, FeatureMapEncoder) else encoder
    if not isinstance(module, torch.nn.Module):
        return
    conv = next((layer for layer in module.modules() if isinstance(layer, torch.nn.modules.conv._ConvNd)), None)
    if conv is not None and conv.in_channels != channels:
        raise _channels_mismatch(channels, conv.in_channels) from error


def _channels_mismatch(channels: int, encoder_channels: int) -> ValueError:
    return ValueError(
        f"ImageEncoderModality(channels={channels}) feeds the encoder {channels}-channel images, but the encoder "
        f"takes {encoder_channels} input channels; pass channels={encoder_channels} (with one mean and std per "
        f"channel): one-channel (grayscale) images are repeated to {encoder_channels} channels")


@register_modality("image-encoder")
class ImageEncoderModality(PretrainedModality):
    r"""Patch nodes whose features are a pretrained vision encoder's hidden states.

    An image is resized to ``image_size`` (bilinear, antialiased), scaled to :math:`[0, 1]` and
    normalised per channel, :math:`(x - \mu) / \sigma`; each output position of the encoder (a
    ViT's patch token, a CNN feature map's cell) is a node at its grid ``(row, col)``, row-major,
    joined to its 4 or 8 neighbours (relation ``('image', 'grid', 'image')``). Frozen, a node
    carries the position's hidden state :math:`[P, D]`; fine-tuned, the
    :math:`s \times s` pixels it covers at the encoder's stride :math:`s` (:math:`[P, C s^2]`, as
    :class:`~graphfuse.ImageModality`), from which the model rebuilds the image and runs the
    encoder (see :class:`PretrainedModality`).

    Raw input: as :class:`~graphfuse.ImageModality` (a tensor or array :math:`[C, H, W]`
    (:math:`[H, W, C]` with ``channels_last=True``) or :math:`[H, W]`, ``uint8`` or floating, or a
    PIL image).

    Args:
        encoder: an :class:`~graphfuse.backbones.HFVisionEncoder` or
            :class:`~graphfuse.backbones.FeatureMapEncoder`; a ViT-style ``transformers`` model
            (or its local ``from_pretrained`` folder); or any CNN ``torch.nn.Module`` returning a
            feature map ``[B, D, h, w]`` (from ``forward_features`` when it has one).
        trainable (bool, optional): fine-tune the encoder. (default: :obj:`False`)
        image_size (int or tuple, optional): the ``(H, W)`` every image is resized to, multiples
            of the encoder's stride. (default: a ViT's ``config.image_size``; required for a CNN)
        mean (Sequence[float], optional): per-channel mean :math:`\mu`. (default: ImageNet's)
        std (Sequence[float], optional): per-channel deviation :math:`\sigma`. (default: ImageNet's)
        channels (int, optional): image channels, the encoder's input channels; one-channel
            images are repeated to them. (default: :obj:`3`)
        neighbourhood (int, optional): ``4`` or ``8``. (default: :obj:`4`)
        self_loops (bool, optional): join each patch to itself. (default: :obj:`False`)
        layer (int, optional): the hidden layer of a transformers model given bare.
            (default: :obj:`None`, the last)
        device, batch_size, cache_size: see :class:`PretrainedModality`.
        channels_last (bool, optional): 3-D tensors and arrays are :math:`[H, W, C]`, as
            NumPy, OpenCV and Hugging Face ``datasets`` hand them over. (default: :obj:`False`)

    Example:
        >>> image = ImageEncoderModality(efficientnet_lite0(pretrained=True), image_size=224)
        >>> builder = GraphBuilder({"image": image, "text": TextModality(tokenizer)}, cross="full")
    """

    relation = "grid"

    def __init__(self, encoder: Backbone | torch.nn.Module | str, trainable: bool = False,
                 image_size: int | Sequence[int] | None = None, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, channels: int = 3, neighbourhood: int = 4,
                 self_loops: bool = False, layer: int | None = None, device: str | torch.device | None = None,
                 batch_size: int = 32, cache_size: int = 4096, channels_last: bool = False) -> None:
        check_int(channels, "ImageEncoderModality 'channels'")
        check_choice(neighbourhood, (4, 8), "ImageEncoderModality 'neighbourhood'")
        check_bool(self_loops, "ImageEncoderModality 'self_loops'")
        check_bool(channels_last, "ImageEncoderModality 'channels_last'")
        try:  # a bare CNN is probed with `channels`-channel images when wrapped (or when its stride is read)
            backbone = _as_backbone(encoder, channels, layer)
        except RuntimeError as error:
            _raise_if_channels_differ(encoder, channels, error)
            raise
        encoder_channels = getattr(backbone, "in_channels", channels)
        if encoder_channels != channels:
            raise _channels_mismatch(channels, encoder_channels)
        super().__init__(backbone, trainable, device, batch_size, cache_size)
        if image_size is None:
            image_size = getattr(self.backbone, "image_size", None)
            if image_size is None:
                raise ValueError(f"ImageEncoderModality needs image_size for a {type(self.backbone).__name__} (e.g. "
                                 f"image_size=224): every image is resized to it, so the node grid is fixed")
        what = "ImageEncoderModality 'image_size' (an int or (H, W))"
        if isinstance(image_size, int) and not isinstance(image_size, bool):
            check_int(image_size, what)
            image_size = (image_size, image_size)
        self.image_size = check_shape(image_size, what)
        if len(self.image_size) != 2:
            raise ValueError(f"{what} must give two sides, got {image_size!r}")
        try:
            self.stride = self._stride()
        except RuntimeError as error:
            _raise_if_channels_differ(encoder, channels, error)
            raise
        self.rows, self.cols = self.image_size[0] // self.stride, self.image_size[1] // self.stride
        for name, values in (("mean", mean), ("std", std)):
            if not isinstance(values, (list, tuple)):
                raise TypeError(f"ImageEncoderModality '{name}' must be a list of numbers, one per channel, got "
                                f"{values!r}")
            for value in values:
                check_number(value, f"ImageEncoderModality '{name}' entry")
        if len(mean) != channels or len(std) != channels or min(std) <= 0:
            raise ValueError(f"ImageEncoderModality needs one mean and one positive std per channel ({channels}), got "
                             f"mean={tuple(mean)}, std={tuple(std)}")
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.channels, self.neighbourhood, self.self_loops = channels, neighbourhood, self_loops
        self.channels_last = channels_last
        self._pos = torch.stack(torch.meshgrid(torch.arange(self.rows), torch.arange(self.cols), indexing="ij"),
                                dim=-1).reshape(-1, 2)

    def _stride(self) -> int:
        height, width = self.image_size
        if isinstance(self.backbone, FeatureMapEncoder):
            return self.backbone.stride_for(height, width)
        stride = getattr(self.backbone, "stride", None)
        if stride is None:
            raise TypeError(f"ImageEncoderModality needs a backbone with a 'stride' (pixels per node), got "
                            f"{type(self.backbone).__name__}")
        if height % stride or width % stride:
            raise ValueError(f"ImageEncoderModality 'image_size' {self.image_size} is not a multiple of the encoder's "
                             f"patch size {stride}; choose one that is")
        return stride

    def node_inputs(self, raw: Any) -> NodeSet:
        image = read_image(raw, self.channels, self.name, self.channels_last, owner="ImageEncoderModality")
        if tuple(image.shape[-2:]) != self.image_size:
            image = F.interpolate(image.unsqueeze(0), size=self.image_size, mode="bilinear", align_corners=False,
                                  antialias=True).squeeze(0)
        image = (image - torch.tensor(self.mean).view(-1, 1, 1)) / torch.tensor(self.std).view(-1, 1, 1)
        return NodeSet(
            x=image_to_patches(image, self.stride),
            edge_index=grid_edges(self.rows, self.cols, self.neighbourhood, self.self_loops),
            pos=self._pos,
            structure=("grid", self.rows, self.cols, self.neighbourhood, self.self_loops),
        )

    def empty_inputs(self) -> NodeSet:
        return NodeSet.empty(feature_shape=(self.channels * self.stride ** 2,), pos_shape=(2,))

    def get_config(self) -> dict:
        return {**self.backbone_config(), "image_size": list(self.image_size), "mean": list(self.mean),
                "std": list(self.std), "channels": self.channels, "neighbourhood": self.neighbourhood,
                "self_loops": self.self_loops, "channels_last": self.channels_last}

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(encoder={self.backbone.extra_repr()}, trainable={self.trainable}, "
                f"image_size={self.image_size}, grid=({self.rows}, {self.cols}))")
