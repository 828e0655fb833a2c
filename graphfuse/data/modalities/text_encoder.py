"""Text -> token nodes carrying a pretrained text encoder's hidden states (frozen or fine-tuned)."""
from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence
from typing import Any

import torch

from graphfuse.backbones import Backbone, HFTextEncoder
from graphfuse.data.modalities.base import register_modality
from graphfuse.data.modalities.hf_tokenizer import load_tokenizer
from graphfuse.data.modalities.pretrained import PretrainedModality
from graphfuse.data.modalities.text import TextModality, saved_tokenizer
from graphfuse.data.nodes import NodeSet


@register_modality("text-encoder")
class TextEncoderModality(PretrainedModality, TextModality):
    r"""Token nodes whose features are a pretrained text encoder's hidden states.

    The tokenizer's subword tokens, special tokens included, are the nodes (as
    :class:`~graphfuse.TextModality` with a Hugging Face tokenizer: the same raw inputs, spans and
    intra-modal ``seq`` edges); frozen, each node carries its token's hidden state :math:`[N, D]`;
    fine-tuned, its token id, and the model runs the encoder (see :class:`PretrainedModality`).
    ``pos`` is the token index, ``time`` (with ``spans=True``) its word's ``(start, end)``.

    Args:
        tokenizer: a Hugging Face tokenizer, or a local folder it was saved to.
        encoder: an :class:`~graphfuse.backbones.HFTextEncoder` (or another text
            :class:`~graphfuse.backbones.Backbone`), a ``transformers`` model, or a local
            ``from_pretrained`` folder.
        trainable (bool, optional): fine-tune the encoder. (default: :obj:`False`)
        layer (int, optional): the hidden layer of a model given bare (see
            :class:`~graphfuse.backbones.HFTextEncoder`). (default: :obj:`None`, the last)
        max_length (int, optional): most tokens per sample. (default: the encoder's
            ``max_position_embeddings``)
        overflow, window, self_loops, spans: see :class:`~graphfuse.TextModality`.
        device, batch_size, cache_size: see :class:`PretrainedModality`.

    Example:
        >>> text = TextEncoderModality(AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder))
        >>> builder = GraphBuilder({"text": text, "image": ImageModality()}, cross="full")
    """

    relation = "seq"

    def __init__(self, tokenizer: Any, encoder: Backbone | torch.nn.Module | str | os.PathLike,
                 trainable: bool = False, layer: int | None = None, max_length: int | None = None,
                 overflow: str = "truncate", window: int = 1, self_loops: bool = False, spans: bool = False,
                 device: str | torch.device | None = None, batch_size: int = 32, cache_size: int = 4096) -> None:
        backbone = encoder if isinstance(encoder, Backbone) else HFTextEncoder(encoder, layer)
        PretrainedModality.__init__(self, backbone, trainable, device, batch_size, cache_size)
        if max_length is None:
            max_length = getattr(backbone, "max_positions", None)
        TextModality.__init__(self, load_tokenizer(tokenizer, "TextEncoderModality"), max_length, overflow, window,
                              self_loops, spans)

    def node_inputs(self, raw: Any) -> NodeSet:
        return TextModality.featurize(self, raw)

    def node_inputs_many(self, raws: Sequence[Any]) -> list[NodeSet]:
        return self.token_nodes(raws)  # TextModality's, with one tokenizer call for the batch

    def empty_inputs(self) -> NodeSet:
        return TextModality.empty(self)

    def get_config(self) -> dict:
        return {**self.backbone_config(), **TextModality.get_config(self)}

    def save_assets(self, folder: pathlib.Path) -> None:
        PretrainedModality.save_assets(self, folder)
        TextModality.save_assets(self, folder)

    @classmethod
    def from_config(cls, config: dict, folder: pathlib.Path | None = None) -> TextEncoderModality:
        config = dict(config)
        tokenizer = saved_tokenizer(config.pop("tokenizer", None), folder, "TextEncoderModality")
        backbone = cls.load_backbone(config, folder)
        return cls(tokenizer, backbone, **config)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(vocab_size={len(self.tokenizer)}, encoder={self.backbone.extra_repr()}, "
                f"trainable={self.trainable}, max_length={self.max_length}, spans={self.spans})")
