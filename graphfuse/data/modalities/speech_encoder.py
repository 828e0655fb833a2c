"""Audio -> frame nodes carrying a pretrained speech encoder's hidden states (frozen or fine-tuned)."""
from __future__ import annotations

from typing import Any

import torch

from graphfuse.backbones import Backbone, HFSpeechEncoder
from graphfuse.checks import check_bool, check_int
from graphfuse.data.edges import chain_edges
from graphfuse.data.modalities.audio import to_mono, unpack_audio
from graphfuse.data.modalities.base import register_modality
from graphfuse.data.modalities.pretrained import PretrainedModality
from graphfuse.data.nodes import NodeSet


@register_modality("speech-encoder")
class SpeechEncoderModality(PretrainedModality):
    r"""Frame nodes whose features are a pretrained speech encoder's hidden states.

    A waveform (mono, at the encoder's ``sample_rate``; standardised to zero mean and unit
    variance with ``normalize``, as wav2vec2's feature extractor does) gives
    :math:`F = \lfloor (T - r) / h \rfloor + 1` frames for the encoder's hop :math:`h` and
    receptive field :math:`r` (see :class:`~graphfuse.backbones.HFSpeechEncoder`; a clip
    shorter than :math:`r` is zero-padded to one frame). Frame :math:`i` is a node with ``pos``
    :math:`i` and ``time`` :math:`(i h, i h + r) / \text{rate}` seconds, joined to frames at most
    ``window`` apart (relation ``('audio', 'seq', 'audio')``). Frozen, it carries the frame's
    hidden state :math:`[F, D]`; fine-tuned, its hop of samples :math:`[F, h]`: the model joins
    the chunks, pads them with :math:`r - h` zeros (in place of the clip's last
    :math:`r - h` samples, which the last frame alone sees) and runs the encoder (see
    :class:`PretrainedModality`); frozen features come from the same chunks, so both agree.

    Raw input: as :class:`~graphfuse.AudioModality` (a waveform :math:`[T]` or :math:`[C, T]`,
    ``(waveform, rate)``, ``{"waveform", "sample_rate"}`` or a ``datasets`` audio value), at
    the encoder's rate: other rates raise (resample first).

    Args:
        encoder: an :class:`~graphfuse.backbones.HFSpeechEncoder`, a wav2vec2-style
            ``transformers`` model or its local ``from_pretrained`` folder.
        trainable (bool, optional): fine-tune the encoder. (default: :obj:`False`)
        sample_rate (int, optional): the encoder's rate, for a model given bare. (default: :obj:`16000`)
        normalize (bool, optional): standardise each waveform. (default: :obj:`True`)
        window (int, optional): frames at most this far apart are joined. (default: :obj:`1`)
        self_loops (bool, optional): join each frame to itself. (default: :obj:`False`)
        layer (int, optional): the hidden layer of a model given bare. (default: :obj:`None`, the last)
        device, batch_size, cache_size: see :class:`PretrainedModality`.

    Example:
        >>> audio = SpeechEncoderModality(Wav2Vec2Model.from_pretrained(folder))
        >>> builder = GraphBuilder({"audio": audio, "text": TextModality(tokenizer)}, cross="full")
    """

    relation = "seq"
    pad_batches = False  # wav2vec2's group norm counts padding: equal lengths share a batch

    def __init__(self, encoder: Backbone | torch.nn.Module | str, trainable: bool = False, sample_rate: int = 16000,
                 normalize: bool = True, window: int = 1, self_loops: bool = False, layer: int | None = None,
                 device: str | torch.device | None = None, batch_size: int = 32, cache_size: int = 4096) -> None:
        backbone = encoder if isinstance(encoder, Backbone) else HFSpeechEncoder(encoder, layer, sample_rate)
        super().__init__(backbone, trainable, device, batch_size, cache_size)
        for attribute in ("hop", "receptive_field", "sample_rate", "num_frames", "frame_times"):
            if not hasattr(backbone, attribute):
                raise TypeError(f"SpeechEncoderModality needs a speech backbone with '{attribute}' (an "
                                f"HFSpeechEncoder), got {type(backbone).__name__}")
        check_int(window, "SpeechEncoderModality 'window'")
        check_bool(normalize, "SpeechEncoderModality 'normalize'")
        check_bool(self_loops, "SpeechEncoderModality 'self_loops'")
        self.normalize, self.window, self.self_loops = normalize, window, self_loops

    @property
    def sample_rate(self) -> int:
        return self.backbone.sample_rate

    def node_inputs(self, raw: Any) -> NodeSet:
        waveform, rate = unpack_audio(raw, self.sample_rate, self.name)
        if rate != self.sample_rate:
            raise ValueError(f"Modality '{self.name}' received audio at {rate} Hz, but its encoder takes "
                             f"{self.sample_rate} Hz; resample the waveform (e.g. torchaudio.functional.resample)")
        waveform = to_mono(waveform, self.name)
        if self.normalize:
            waveform = (waveform - waveform.mean()) / torch.sqrt(waveform.var(unbiased=False) + 1e-7)
        hop, receptive_field = self.backbone.hop, self.backbone.receptive_field
        if waveform.numel() < receptive_field:
            waveform = torch.nn.functional.pad(waveform, (0, receptive_field - waveform.numel()))
        num_frames = self.backbone.num_frames(waveform.numel())
        return NodeSet(
            x=waveform[:num_frames * hop].reshape(num_frames, hop),
            edge_index=chain_edges(num_frames, self.window, self.self_loops),
            pos=torch.arange(num_frames),
            time=self.backbone.frame_times(num_frames),
            structure=("chain", num_frames, self.window, self.self_loops),
        )

    def empty_inputs(self) -> NodeSet:
        return NodeSet.empty(feature_shape=(self.backbone.hop,), pos_shape=(), timed=True)

    def get_config(self) -> dict:
        return {**self.backbone_config(), "normalize": self.normalize, "window": self.window,
                "self_loops": self.self_loops}

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(encoder={self.backbone.extra_repr()}, trainable={self.trainable}, "
                f"window={self.window})")
