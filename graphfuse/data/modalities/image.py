"""Images -> patch nodes on a grid."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy
import torch
import torch.nn.functional as F
from torch import Tensor

from graphfuse.backbones.base import images_to_patches
from graphfuse.checks import as_tensor, check_bool, check_choice, check_int, to_float32
from graphfuse.data.edges import copies, grid_edges
from graphfuse.data.modalities.base import Modality, register_modality
from graphfuse.data.modalities.batching import featurizes_as, in_groups
from graphfuse.data.nodes import NodeSet

_SIZE_POLICIES = ("pad", "error")
#: Patch features of one size cut at once, at most (one image at least).
_CHUNK_BYTES = 8 << 20


@register_modality("image")
class ImageModality(Modality):
    r"""Patch nodes: an image is cut into non-overlapping ``patch_size`` x ``patch_size``
    patches, each a node whose features are its flattened pixels.

    Node attributes: ``x`` :math:`[P, C p^2]` (``float32``, channel-major within a patch,
    ``uint8`` scaled to :math:`[0, 1]`), ``pos`` the patch ``(row, col)`` :math:`[P, 2]`
    (``torch.long``), patches numbered row-major. Intra-modal relation
    ``('image', 'grid', 'image')`` joins 4- or 8-neighbouring patches.

    Raw input: a tensor (or array) :math:`[C, H, W]` (:math:`[H, W, C]` with
    ``channels_last=True``) or :math:`[H, W]`, ``uint8`` or floating, or a PIL image (channels
    last by definition, whatever ``channels_last`` says; palette and other 8-bit modes are
    converted to RGB, or to L for ``channels=1``; mode ``F`` is read as floating pixels; the
    integer modes ``I`` and ``I;16`` are refused: convert them to floating pixels). A
    one-channel image is repeated to ``channels`` channels.
    Featurisation carries no gradient: a tensor that requires one is read detached.

    Args:
        patch_size (int, optional): patch side :math:`p` in pixels. (default: :obj:`4`)
        channels (int, optional): channels :math:`C` of every image. (default: :obj:`3`)
        neighbourhood (int, optional): ``4`` or ``8``. (default: :obj:`4`)
        self_loops (bool, optional): join each patch to itself. (default: :obj:`False`)
        size_policy (str, optional): for sides not divisible by :math:`p`: ``"pad"`` adds zero
            pixels at the bottom and right, ``"error"`` raises. (default: :obj:`"pad"`)
        channels_last (bool, optional): 3-D tensors and arrays are :math:`[H, W, C]`, as
            NumPy, OpenCV and Hugging Face ``datasets`` hand them over. (default: :obj:`False`)
    """

    relation = "grid"

    def __init__(self, patch_size: int = 4, channels: int = 3, neighbourhood: int = 4,
                 self_loops: bool = False, size_policy: str = "pad", channels_last: bool = False) -> None:
        check_int(patch_size, "ImageModality 'patch_size'")
        check_int(channels, "ImageModality 'channels'")
        check_choice(neighbourhood, (4, 8), "ImageModality 'neighbourhood'")
        check_choice(size_policy, _SIZE_POLICIES, "ImageModality 'size_policy'")
        check_bool(self_loops, "ImageModality 'self_loops'")
        check_bool(channels_last, "ImageModality 'channels_last'")
        self.patch_size = patch_size
        self.channels = channels
        self.neighbourhood = neighbourhood
        self.self_loops = self_loops
        self.size_policy = size_policy
        self.channels_last = channels_last

    @property
    def feature_dim(self) -> int:
        return self.channels * self.patch_size ** 2

    def featurize(self, raw: Any) -> NodeSet:
        return self._patch_nodes([raw])[0]

    def featurize_many(self, raws: Sequence[Any]) -> list[NodeSet]:
        """Images -> their patch nodes, equal to :meth:`featurize` of each, with the images of one size
        (and pixel dtype) cut into patches together: stacked, padded and unfolded once, their
        ``uint8`` pixels scaled in the same pass."""
        if not featurizes_as(self, ImageModality):
            return super().featurize_many(raws)
        return self._patch_nodes(raws)

    def _patch_nodes(self, raws: Sequence[Any]) -> list[NodeSet]:
        images = [image_pixels(raw, self.channels, self.name, self.channels_last) for raw in raws]
        return in_groups(images, key=lambda image: (image.shape, image.dtype), featurize=self._same_size_nodes)

    def _same_size_nodes(self, images: list[Tensor]) -> list[NodeSet]:
        # A few MiB of patches at a time: one buffer for a whole batch of large images (38 MB for 64 at 224
        # pixels) would be above glibc's mmap threshold, fresh pages from the kernel on every batch.
        per_chunk = max(1, _CHUNK_BYTES // (4 * images[0].numel()))
        return [nodes for start in range(0, len(images), per_chunk)
                for nodes in self._chunk_nodes(images[start:start + per_chunk])]

    def _chunk_nodes(self, images: list[Tensor]) -> list[NodeSet]:
        p = self.patch_size
        height, width = images[0].shape[-2:]
        pad_bottom, pad_right = -height % p, -width % p
        batch = torch.stack(images)  # [B, C, H, W], uint8 or float32
        if pad_bottom or pad_right:
            if self.size_policy == "error":
                raise ValueError(
                    f"Modality '{self.name}' received a {height}x{width} image, not divisible into "
                    f"{p}x{p} patches; resize or crop it, or use size_policy='pad'")
            batch = F.pad(batch, (0, pad_right, 0, pad_bottom))
        rows, cols = batch.size(2) // p, batch.size(3) // p
        # [B, rows * cols, C p^2]: uint8 pixels are cut as bytes (a fifth faster than cutting and converting
        # in one copy) and scaled to float32 in one pass
        x = images_to_patches(batch, p)
        if x.dtype == torch.uint8:
            x = x.div(255.0)
        pos = torch.stack(torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij"), dim=-1)
        pos = pos.reshape(1, rows * cols, 2).repeat(len(images), 1, 1)
        structure = ("grid", rows, cols, self.neighbourhood, self.self_loops)
        edges = copies(grid_edges(rows, cols, self.neighbourhood, self.self_loops), len(images))
        return [NodeSet(x=image_x, edge_index=edge_index, pos=image_pos, structure=structure,
                        validated=True)  # finite pixels, edges of the grid
                for image_x, edge_index, image_pos in zip(x.unbind(), edges, pos.unbind(), strict=True)]

    def conforms_to_empty(self) -> bool:
        return type(self) is ImageModality

    def empty(self) -> NodeSet:
        return NodeSet.empty(feature_shape=(self.feature_dim,), pos_shape=(2,))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(patch_size={self.patch_size}, channels={self.channels}, "
                f"neighbourhood={self.neighbourhood}, size_policy={self.size_policy!r}"
                f"{', channels_last=True' if self.channels_last else ''})")


def read_image(raw: Any, channels: int, name: str, channels_last: bool = False,
               owner: str = "ImageModality") -> Tensor:
    """A raw image (tensor or array ``[C, H, W]``, or ``[H, W, C]`` with ``channels_last``, or ``[H, W]``,
    ``uint8`` or floating, or a PIL image) as a float tensor ``[channels, H, W]`` (``uint8`` scaled to
    [0, 1], one channel repeated); errors name the modality ``name`` and the class ``owner`` whose settings
    they suggest."""
    image = image_pixels(raw, channels, name, channels_last, owner)
    return image.float().div_(255.0) if image.dtype == torch.uint8 else image


def image_pixels(raw: Any, channels: int, name: str, channels_last: bool = False,
                 owner: str = "ImageModality") -> Tensor:
    """:func:`read_image` before ``uint8`` pixels are scaled: ``[channels, H, W]``, ``uint8`` or ``float32``
    (so that many images are scaled together, once stacked)."""
    layout = "[H, W, C]" if channels_last else "[C, H, W]"
    pil = _is_pil_image(raw)
    if pil:
        raw = _from_pil(raw, channels, name)
    else:
        raw = as_tensor(raw, f"Modality '{name}'", f"an image tensor or array {layout} or [H, W]")
        if raw.requires_grad:  # featurisation carries no gradient
            raw = raw.detach()
    shape = tuple(raw.shape)
    if channels_last and raw.dim() == 3 and not pil:
        raw = raw.permute(2, 0, 1)
    if raw.dim() not in (2, 3):
        hint = " (a batch? pass one image per sample)" if raw.dim() == 4 else ""
        raise ValueError(
            f"Modality '{name}' received a {raw.dim()}-D tensor of shape {shape}{hint}; expected {layout} or [H, W]")
    if raw.numel() == 0:
        raise ValueError(f"Modality '{name}' received an empty image of shape {shape}")
    if raw.dtype == torch.uint8:
        image = raw
    elif raw.is_floating_point():
        image = to_float32(raw, name, "pixels")
    else:
        raise TypeError(
            f"Modality '{name}' received pixels of dtype {raw.dtype}; expected uint8 (0-255) or a floating dtype")
    image = image.unsqueeze(0) if image.dim() == 2 else image
    num_channels = image.size(0)
    if num_channels == 1 and channels > 1:
        image = image.expand(channels, -1, -1)
    elif num_channels != channels:
        hint = (f" (channels last? pass {owner}(channels_last=True), or permute it to [C, H, W])"
                if not (channels_last or pil) and shape[-1] == channels else "")
        raise ValueError(
            f"Modality '{name}' received {num_channels} channels in an image of shape {shape}{hint}; expected "
            f"{channels} channels {layout}, as set by {owner}(channels={channels}"
            f"{', channels_last=True' if channels_last else ''})")
    return image


def _from_pil(image: Any, channels: int, name: str) -> Tensor:
    """A PIL image as a ``uint8`` tensor ``[C, H, W]``, or ``float32`` ``[1, H, W]`` for mode ``F`` (PIL is
    duck-typed: graphfuse does not need it). Integer modes are refused: converting them to 8 bits would
    clip every value above 255."""
    if image.mode == "F":
        return torch.from_numpy(numpy.array(image, dtype=numpy.float32)).unsqueeze(0)
    if image.mode == "I" or image.mode.startswith("I;"):
        bits = "32-bit" if image.mode == "I" else "16-bit"
        raise TypeError(
            f"Modality '{name}' received a PIL image of mode {image.mode!r} ({bits} integer pixels), which "
            f"converting to 8 bits would clip; pass floating pixels in [0, 1] instead, e.g. "
            f"numpy.asarray(image, dtype=numpy.float32) / 65535 for 16-bit data")
    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("L" if channels == 1 else "RGB")
    if image.mode == "RGBA" and channels == 3:
        image = image.convert("RGB")
    pixels = torch.from_numpy(numpy.array(image, dtype=numpy.uint8))
    return pixels.unsqueeze(0) if pixels.dim() == 2 else pixels.permute(2, 0, 1)


def _is_pil_image(raw: Any) -> bool:
    return type(raw).__module__.startswith("PIL.") and hasattr(raw, "mode") and hasattr(raw, "convert")
