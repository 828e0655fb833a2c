"""The backbone interface: a pretrained encoder as a source of per-node hidden states."""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import Tensor

from graphfuse.checkpoint import CheckpointError, reading_safetensors


class Backbone(torch.nn.Module, ABC):
    r"""A pretrained encoder turning a batch of inputs into per-node hidden states :math:`[B, N, D]`.

    Subclasses wrap an encoder (a Hugging Face model, any ``torch.nn.Module``) and implement
    :meth:`forward` on the encoder's own inputs (token ids, images, waveforms) and
    :meth:`forward_nodes` on the same inputs cut at node granularity (one token id, one patch of
    pixels, one hop of samples per output node), so that a graph model can run the encoder on a
    batch's nodes and fine-tune it. :attr:`out_channels` is :math:`D`.

    Serialisable: :meth:`get_config` gives JSON-able constructor arguments that rebuild the
    encoder with random weights (:meth:`from_config`); the weights travel apart, as safetensors
    (:meth:`save_weights` / :meth:`load_weights`).
    """

    out_channels: int

    @abstractmethod
    def forward_nodes(self, x: Tensor, mask: Tensor, pos: Tensor | None = None) -> Tensor:
        """Node inputs padded per sample :math:`[B, N, *]` (``mask`` :math:`[B, N]` marks the real
        ones, ``pos`` their positions :math:`[B, N, *]`) -> hidden states :math:`[B, N, D]`, one per node."""

    @abstractmethod
    def get_config(self) -> dict[str, Any]:
        """JSON-able arguments of :meth:`from_config`."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Backbone:
        """The backbone rebuilt from :meth:`get_config` (random weights: load them with :meth:`load_weights`)."""
        return cls(**config)

    def save_weights(self, path: str | os.PathLike) -> None:
        """Writes the weights to a safetensors file (shared tensors are stored once)."""
        safetensors.torch.save_model(self, os.fspath(path))

    def load_weights(self, path: str | os.PathLike) -> None:
        """Reads weights written by :meth:`save_weights`; every tensor must match. A damaged file, or one
        whose tensors do not fit this backbone (missing, unexpected or of another shape), raises a
        :class:`~graphfuse.checkpoint.CheckpointError` naming it and what does not fit."""
        path = os.fspath(path)
        with reading_safetensors(path, "the weights"):
            with safetensors.safe_open(path, "pt") as weights:
                shapes = {key: tuple(weights.get_slice(key).get_shape()) for key in weights.keys()}
            own = self.state_dict()
            wrong = [f"{key} {shape} (backbone: {tuple(own[key].shape)})" for key, shape in shapes.items()
                     if key in own and shape != tuple(own[key].shape)]
            missing, unexpected = ([], []) if wrong else safetensors.torch.load_model(self, path, strict=False)
        if wrong or missing or unexpected:
            problems = [f"{label}: {items[:5]}{' ...' if len(items) > 5 else ''}" for label, items in (
                ("missing", sorted(missing)), ("unexpected", sorted(unexpected)), ("wrong shape", wrong)) if items]
            raise CheckpointError(f"{path} does not fit the '{type(self).__name__}' it is loaded into "
                                  f"({'; '.join(problems)}): the file was saved from a different backbone")


def check_hidden_states(hidden: Any, owner: str, batch_size: int | None = None) -> Tensor:
    """An encoder's output as :math:`[B, N, D]` (``[N, D]`` is one sample); anything else raises,
    naming ``owner`` and what to do."""
    if isinstance(hidden, Tensor) and hidden.is_floating_point() and hidden.dim() in (2, 3):
        hidden = hidden.unsqueeze(0) if hidden.dim() == 2 else hidden
        if batch_size is None or hidden.size(0) == batch_size:
            return hidden
    described = (f"a tensor of shape {tuple(hidden.shape)} and dtype {hidden.dtype}" if isinstance(hidden, Tensor)
                 else type(hidden).__name__)
    expected = "[N, D] or [B, N, D]" if batch_size is None else f"[{batch_size}, N, D]"
    raise ValueError(f"'{owner}' expects its encoder to return floating hidden states {expected}, got {described}; "
                     f"wrap the module so that it returns one hidden state per node (e.g. a model's "
                     f"last_hidden_state)")


def image_to_patches(image: Tensor, stride: int) -> Tensor:
    """An image :math:`[C, H, W]` (sides multiples of ``stride``) -> row-major patches
    :math:`[(H/s)(W/s), C s^2]`, channel-major within a patch (as :class:`~graphfuse.ImageModality`)."""
    return images_to_patches(image.unsqueeze(0), stride)[0]


def images_to_patches(images: Tensor, stride: int) -> Tensor:
    """:func:`image_to_patches` of a batch :math:`[B, C, H, W]` -> :math:`[B, (H/s)(W/s), C s^2]`, in one copy."""
    batch, channels, height, width = images.shape
    rows, cols = height // stride, width // stride
    patches = torch.empty(batch, rows, cols, channels, stride, stride, dtype=images.dtype)
    row_bytes = stride * images.element_size()
    word = next(w for w in (torch.int64, torch.int32, torch.int16, images.dtype) if row_bytes % w.itemsize == 0)
    if (word != images.dtype and images.is_contiguous() and (height, width) == (rows * stride, cols * stride)
            and images.storage_offset() * images.element_size() % word.itemsize == 0):
        # A patch's row of pixels moves as whole machine words (one int32 for 4 uint8 pixels): the permuting
        # copy handles a fraction of the elements, and bits are bits
        per_row = row_bytes // word.itemsize
        patches.view(word).view(batch, rows, cols, channels, stride, per_row).copy_(
            images.view(word).view(batch, channels, rows, stride, cols, per_row).permute(0, 2, 4, 1, 3, 5))
    else:
        patches.copy_(images.unfold(2, stride, stride).unfold(3, stride, stride).permute(0, 2, 3, 1, 4, 5))
    return patches.view(batch, rows * cols, channels * stride * stride)


def patches_to_images(patches: Tensor, rows: int, cols: int, stride: int) -> Tensor:
    """The inverse of :func:`image_to_patches` for a batch: :math:`[B, R C, C s^2]` -> :math:`[B, C, R s, C s]`."""
    batch = patches.size(0)
    grid = patches.reshape(batch, rows, cols, -1, stride, stride)
    return grid.permute(0, 3, 1, 4, 2, 5).reshape(batch, -1, rows * stride, cols * stride)


def grid_of(pos: Tensor | None, num_nodes: int, owner: str) -> tuple[int, int]:
    """``(rows, cols)`` of row-major patch nodes from their ``(row, col)`` positions :math:`[B, N, 2]`
    (every sample has the whole grid: the last node of the first sample is the bottom-right patch)."""
    if pos is None or pos.dim() != 3 or pos.size(-1) != 2:
        raise ValueError(f"'{owner}' needs the (row, col) positions [B, N, 2] of the patch nodes to rebuild the "
                         f"images, got {None if pos is None else tuple(pos.shape)}")
    rows, cols = (int(v) + 1 for v in pos[0, num_nodes - 1].tolist())
    return rows, cols
