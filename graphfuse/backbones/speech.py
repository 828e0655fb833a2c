"""Hugging Face speech encoders (wav2vec 2.0, HuBERT, WavLM, ...) as frame-node backbones."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from graphfuse.backbones.huggingface import HFBackbone
from graphfuse.backbones.registry import register_backbone


@register_backbone("hf-speech-encoder", family="wrapper")
class HFSpeechEncoder(HFBackbone):
    r"""A wav2vec2-style ``transformers`` speech encoder: a waveform -> one hidden state per frame.

    The convolutional feature extractor (kernels :math:`k_j`, strides :math:`s_j`, read off the
    config's ``conv_kernel`` / ``conv_stride``) advances by the hop :math:`h = \prod_j s_j` samples
    per frame and sees a receptive field of :math:`r = 1 + \sum_j (k_j - 1) \prod_{i<j} s_i`
    samples, so frame :math:`i` covers :math:`[i h, i h + r)`: its ``(start, end)`` in seconds is
    that span over ``sample_rate``.

    Args:
        model (torch.nn.Module or str): a ``transformers`` speech encoder taking ``input_values``
            whose config has ``conv_kernel`` and ``conv_stride``, or a local ``from_pretrained`` folder.
        layer (int, optional): index into ``hidden_states``; ``None`` for ``last_hidden_state``.
            (default: :obj:`None`)
        sample_rate (int, optional): the rate the model was trained at. (default: :obj:`16000`)

    Shapes:
        - **input:** waveforms :math:`(B, T)`, attention mask :math:`(B, T)`
        - **output:** :math:`(B, F, D)` with :math:`F` = :meth:`num_frames` of :math:`T`
    """

    def __init__(self, model, layer: int | None = None, sample_rate: int = 16000) -> None:
        super().__init__(model, layer)
        kernels, strides = getattr(self.config, "conv_kernel", None), getattr(self.config, "conv_stride", None)
        if kernels is None or strides is None or len(kernels) != len(strides):
            raise TypeError(f"'HFSpeechEncoder' expects a wav2vec2-style model whose config has conv_kernel and "
                            f"conv_stride, got {type(self.model).__name__}")
        self.kernels, self.strides = [int(k) for k in kernels], [int(s) for s in strides]
        self.sample_rate = int(sample_rate)
        self.hop = math.prod(self.strides)
        self.receptive_field = 1 + sum((k - 1) * math.prod(self.strides[:j]) for j, k in enumerate(self.kernels))

    def num_frames(self, num_samples: int) -> int:
        """Frames the model gives for ``num_samples`` samples (0 when shorter than the receptive field)."""
        length = num_samples
        for kernel, stride in zip(self.kernels, self.strides, strict=True):
            length = (length - kernel) // stride + 1 if length >= kernel else 0
        return length

    def frame_times(self, num_frames: int) -> Tensor:
        """``(start, end)`` of each frame in seconds, :math:`[F, 2]`."""
        start = torch.arange(num_frames, dtype=torch.float64) * self.hop
        return (torch.stack([start, start + self.receptive_field], dim=1) / self.sample_rate).float()

    def forward(self, input_values: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.hidden_states(input_values.size(0), input_values=input_values, attention_mask=attention_mask)

    def forward_nodes(self, x: Tensor, mask: Tensor, pos: Tensor | None = None) -> Tensor:
        """Frames from hop-long chunks :math:`[B, F, h]`: the chunks are joined and padded with
        :math:`r - h` zeros, which gives exactly :math:`F` frames."""
        batch, num_frames = x.shape[:2]
        tail = self.receptive_field - self.hop
        waveform = torch.nn.functional.pad(x.reshape(batch, num_frames * self.hop), (0, tail))
        attention_mask = None
        if getattr(self.config, "feat_extract_norm", "layer") == "layer":  # as transformers' feature extractors
            lengths = mask.sum(1, keepdim=True) * self.hop + tail
            attention_mask = (torch.arange(waveform.size(1), device=x.device) < lengths).long()
        hidden = self.forward(waveform, attention_mask)
        if hidden.size(1) < num_frames:
            raise ValueError(f"'HFSpeechEncoder' got {hidden.size(1)} frames from {num_frames} chunks of {self.hop} "
                             f"samples; the model's frame rate does not match its config's conv_stride")
        return hidden[:, :num_frames]

    def get_config(self) -> dict:
        return {**super().get_config(), "sample_rate": self.sample_rate}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, hop={self.hop}, receptive_field={self.receptive_field}"
