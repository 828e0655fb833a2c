"""Argument and input checks shared by the baseline fusion layers; ``owner`` names the caller in
the errors."""
from __future__ import annotations

import torch
from torch import Tensor

from graphfuse.checks import check_int, check_probability

__all__ = ["check_transformer", "check_vectors"]


def check_transformer(owner: str, channels: int, num_layers: int, heads: int, ffn_ratio: float,
                      dropout: float) -> None:
    """The options of a transformer over ``channels``-wide tokens."""
    check_int(channels, f"{owner} 'channels'")
    check_int(num_layers, f"{owner} 'num_layers'")
    check_int(heads, f"{owner} 'heads'")
    if channels % heads:
        raise ValueError(f"{owner} splits {channels} channels over heads={heads}; pick a number of heads that "
                         f"divides 'channels'")
    if isinstance(ffn_ratio, bool) or not isinstance(ffn_ratio, (int, float)) or not ffn_ratio > 0:
        raise ValueError(f"{owner} 'ffn_ratio' must be a positive number, got {ffn_ratio!r}")
    check_probability(dropout, f"{owner} 'dropout'")


def check_vectors(owner: str, z: Tensor, present: Tensor, num_modalities: int, channels: int) -> None:
    """``z [B, num_modalities, channels]`` and its bool mask ``present [B, num_modalities]``."""
    if (not isinstance(z, Tensor) or not isinstance(present, Tensor) or z.dim() != 3
            or tuple(z.shape[1:]) != (num_modalities, channels) or present.dtype != torch.bool
            or tuple(present.shape) != tuple(z.shape[:2])):
        raise ValueError(f"{owner} expects modality vectors z [B, {num_modalities}, {channels}] and a bool mask "
                         f"present [B, {num_modalities}], got z {tuple(getattr(z, 'shape', ()))} and present "
                         f"{tuple(getattr(present, 'shape', ()))} of dtype {getattr(present, 'dtype', None)}; "
                         f"stack the ModalityEncoder outputs of the modalities along dim 1")
