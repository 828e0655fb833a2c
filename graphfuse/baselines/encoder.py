"""A transformer over the tokens of one modality, and the transformer blocks the baselines share."""
from __future__ import annotations

import torch
from torch import Tensor

from graphfuse.baselines.checks import check_transformer
from graphfuse.baselines.dense import key_padding, masked_mean

__all__ = ["ModalityEncoder", "encoder_layer", "reset_transformer", "run_layers"]


def encoder_layer(channels: int, heads: int, ffn_ratio: float, dropout: float, factory: dict,
                  norm_first: bool = True, activation: str = "gelu") -> torch.nn.TransformerEncoderLayer:
    """A transformer layer (pre-norm GELU by default), batch first, with a feed-forward of
    ``ffn_ratio * channels``."""
    return torch.nn.TransformerEncoderLayer(channels, heads, max(1, int(ffn_ratio * channels)), dropout,
                                            activation=activation, batch_first=True, norm_first=norm_first,
                                            **factory)


def reset_transformer(module: torch.nn.Module) -> None:
    """Resets the linear, norm and attention layers under ``module`` (attention last: it zeroes the
    biases of its input and output projections)."""
    for child in module.modules():
        if isinstance(child, (torch.nn.Linear, torch.nn.LayerNorm)):
            child.reset_parameters()
    for child in module.modules():
        if isinstance(child, torch.nn.MultiheadAttention):
            child._reset_parameters()


def run_layers(layers: torch.nn.ModuleList, norm: torch.nn.Module, x: Tensor, mask: Tensor) -> Tensor:
    """``layers`` over the padded tokens ``x [B, L, C]`` (valid where ``mask``), then ``norm``."""
    if x.size(1) == 0:
        return x
    padding = key_padding(mask)
    for layer in layers:
        x = layer(x, src_key_padding_mask=padding)
    return norm(x)


class ModalityEncoder(torch.nn.Module):
    r"""A transformer over the tokens of one modality, then masked mean pooling.

    .. math::
        \mathbf{H} = \mathrm{LN}\big(\mathrm{Transformer}^{L}(\mathbf{X}; \mathbf{m})\big), \qquad
        \mathbf{z} = \frac{1}{\sum_i m_i} \sum_{i:\,m_i} \mathbf{H}_i, \qquad
        \mathrm{present} = \textstyle\bigvee_i m_i

    Pre-norm :class:`torch.nn.TransformerEncoderLayer` blocks attend over the valid tokens only (a
    key padding mask), so a sample's output does not depend on how much it was padded. A sample
    without tokens (the modality is absent) gets ``present = False`` and zeros as a placeholder
    (never NaN): consumers must read ``present``.

    Args:
        channels (int): features per token, :math:`C`.
        num_layers (int, optional): transformer layers. (default: :obj:`1`)
        heads (int, optional): attention heads (dividing ``channels``). (default: :obj:`4`)
        ffn_ratio (float, optional): feed-forward size over ``channels``. (default: :obj:`2.0`)
        dropout (float, optional): in attention and feed-forward layers. (default: :obj:`0.1`)
        device (torch.device, optional): device of the parameters. (default: :obj:`None`)
        dtype (torch.dtype, optional): dtype of the parameters. (default: :obj:`None`)

    Shapes:
        - **input:** tokens :math:`(B, L, C)`, mask :math:`(B, L)` bool (as from
          :func:`~graphfuse.baselines.dense_modalities`)
        - **output:** :math:`(B, C)`, present :math:`(B,)` bool
    """

    def __init__(self, channels: int, num_layers: int = 1, heads: int = 4, ffn_ratio: float = 2.0,
                 dropout: float = 0.1, device=None, dtype=None) -> None:
        super().__init__()
        check_transformer("ModalityEncoder", channels, num_layers, heads, ffn_ratio, dropout)
        factory = dict(device=device, dtype=dtype)
        self.channels, self.num_layers, self.heads = channels, num_layers, heads
        self.layers = torch.nn.ModuleList(encoder_layer(channels, heads, ffn_ratio, dropout, factory)
                                          for _ in range(num_layers))
        self.norm = torch.nn.LayerNorm(channels, **factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_transformer(self)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        if (x.dim() != 3 or x.size(-1) != self.channels or mask.dtype != torch.bool
                or tuple(mask.shape) != tuple(x.shape[:2])):
            raise ValueError(f"ModalityEncoder expects tokens [B, L, {self.channels}] and a bool mask [B, L], got "
                             f"{tuple(x.shape)} and {tuple(mask.shape)} of dtype {mask.dtype}; pad them with "
                             f"graphfuse.baselines.dense_modalities")
        return masked_mean(run_layers(self.layers, self.norm, x, mask), mask)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, num_layers={self.num_layers}, heads={self.heads})"
