"""Text -> token nodes joined along the sequence."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from graphfuse.checks import check_bool, check_choice, check_int
from graphfuse.config import asset_path, file_stem
from graphfuse.data.modalities.base import Modality, register_modality
from graphfuse.data.modalities.batching import chain_edges_many, featurizes_as, sequence_positions
from graphfuse.data.modalities.hf_tokenizer import check_word_ids_support, hf_encode, is_hf_tokenizer, load_tokenizer
from graphfuse.data.modalities.tokenizer import Tokenizer
from graphfuse.data.nodes import NodeSet, NodeSpec

_OVERFLOW_POLICIES = ("truncate", "error")


@register_modality("text")
class TextModality(Modality):
    r"""Token nodes: a string or a pre-tokenised list becomes one node per token.

    Node attributes: ``x`` token ids :math:`[N]` (``torch.long``), ``pos`` token index
    :math:`[N]`, and with ``spans=True`` ``time`` :math:`[N, 2]`, each token's
    ``(start, end)`` in seconds (``NaN`` where a sample gives none) for alignment with audio.
    Intra-modal relation ``('text', 'seq', 'text')`` joins tokens at most ``window`` apart.

    Raw input: a ``str``; a list of token strings; or a mapping with ``"text"`` (a string)
    or ``"tokens"`` (a list), and ``"spans"``, one ``(start, end)`` pair per token.

    With a Hugging Face tokenizer (any object with ``__call__``, ``convert_ids_to_tokens`` and
    ``len``: WordPiece, BPE, SentencePiece), the nodes are its subword tokens, special tokens
    (``[CLS]``, ``[SEP]``, ``<s>``) included: a pretrained encoder expects them, and one node per
    token it sees keeps the node layout of this modality, a frozen and a fine-tuned
    :class:`~graphfuse.data.modalities.TextEncoderModality` the same. A list is then a list of
    words, and ``"spans"`` gives one ``(start, end)`` per word (of the list, or of the
    tokenizer's pre-tokenisation of ``"text"``): each subword token gets its word's span, special
    tokens ``NaN``, which needs a fast tokenizer (``word_ids()``). ``max_length`` truncation is the
    tokenizer's (it keeps the closing special token).

    Args:
        tokenizer (Tokenizer or transformers tokenizer): splits text and maps tokens to ids.
        max_length (int, optional): most tokens kept per sample. (default: :obj:`None`, no limit)
        overflow (str, optional): what happens to longer inputs: ``"truncate"`` keeps the first
            ``max_length`` tokens (and their spans), ``"error"`` raises. (default: :obj:`"truncate"`)
        window (int, optional): tokens at most this far apart are joined. (default: :obj:`1`)
        self_loops (bool, optional): join each token to itself. (default: :obj:`False`)
        spans (bool, optional): keep per-token time spans. (default: :obj:`False`)
    """

    relation = "seq"

    def __init__(self, tokenizer: Tokenizer, max_length: int | None = None, overflow: str = "truncate",
                 window: int = 1, self_loops: bool = False, spans: bool = False) -> None:
        if not (isinstance(tokenizer, Tokenizer) or is_hf_tokenizer(tokenizer)):
            raise TypeError(
                f"TextModality expects a graphfuse Tokenizer or a Hugging Face tokenizer, got "
                f"{type(tokenizer).__name__}; build one with Tokenizer.from_corpus(texts) or Tokenizer.load(path), "
                f"or load one with transformers.AutoTokenizer.from_pretrained(folder)")
        if spans and not isinstance(tokenizer, Tokenizer):
            check_word_ids_support(tokenizer, "TextModality")
        if max_length is not None:
            check_int(max_length, "TextModality 'max_length'")
        check_choice(overflow, _OVERFLOW_POLICIES, "TextModality 'overflow'")
        check_int(window, "TextModality 'window'")
        check_bool(self_loops, "TextModality 'self_loops'")
        check_bool(spans, "TextModality 'spans'")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.overflow = overflow
        self.window = window
        self.self_loops = self_loops
        self.spans = spans

    def featurize(self, raw: Any) -> NodeSet:
        return self.token_nodes([raw])[0]

    def featurize_many(self, raws: Sequence[Any]) -> list[NodeSet]:
        """Texts -> their token nodes, equal to :meth:`featurize` of each, with the tokens of all texts
        looked up in one pass (:meth:`Tokenizer.ids_many`), or a Hugging Face tokenizer called
        once on all the strings (and once on all the word lists)."""
        if not featurizes_as(self, TextModality):
            return super().featurize_many(raws)
        return self.token_nodes(raws)

    def token_nodes(self, raws: Sequence[Any]) -> list[NodeSet]:
        """The token nodes of raw texts, made together: :meth:`featurize_many` of this class, which a
        subclass featurising otherwise (a text encoder) reaches here."""
        if isinstance(self.tokenizer, Tokenizer):
            kept = [self._kept_tokens(raw) for raw in raws]
            ids = self.tokenizer.ids_many([tokens for tokens, _ in kept])  # (normalised by _tokens_and_spans)
            spans = [text_spans for _, text_spans in kept]
        else:
            ids, spans = self._hf_ids_and_spans(raws)
        lengths = [text_ids.numel() for text_ids in ids]
        positions = sequence_positions(lengths).split(lengths)
        edges = chain_edges_many(lengths, self.window, self.self_loops)
        nodes = []
        for text_ids, edge_index, text_pos, text_spans, num_tokens in zip(ids, edges, positions, spans, lengths,
                                                                          strict=True):
            time = None
            if self.spans:
                time = text_spans if text_spans is not None else torch.full((num_tokens, 2), float("nan"))
            nodes.append(NodeSet(x=text_ids, edge_index=edge_index,
                                 pos=text_pos, time=time, structure=("chain", num_tokens, self.window, self.self_loops),
                                 validated=True))  # ids, checked spans, edges of the chain
        return nodes

    def _kept_tokens(self, raw: Any) -> tuple[list[str], Tensor | None]:
        """The tokens (and spans) of a raw input that ``max_length`` keeps, for graphfuse's tokenizer."""
        tokens, spans = self._tokens_and_spans(raw)
        if self.max_length is not None and len(tokens) > self.max_length:
            if self.overflow == "error":
                raise ValueError(
                    f"Modality '{self.name}' received {len(tokens)} tokens, more than max_length="
                    f"{self.max_length}; shorten the text, raise max_length, or use overflow='truncate'")
            tokens = tokens[:self.max_length]
            spans = None if spans is None else spans[:self.max_length]
        return tokens, spans

    def _hf_ids_and_spans(self, raws: Sequence[Any]) -> tuple[list[Tensor], list[Tensor | None]]:
        contents, spans = zip(*(self._hf_content(raw) for raw in raws), strict=True)
        encoded = hf_encode(self.tokenizer, contents, spans, self.max_length, self.overflow, f"Modality '{self.name}'",
                            lambda word_spans, num_words: self._check_spans(word_spans, num_words, "word"))
        return [ids for ids, _ in encoded], [time for _, time in encoded]

    def _hf_content(self, raw: Any) -> tuple[str | list[str], Any]:
        """``(a string or a list of words, word spans or None)`` of a raw input, for a Hugging Face tokenizer."""
        content, spans = self._split(raw)
        if isinstance(content, str) or (isinstance(content, Sequence) and all(isinstance(w, str) for w in content)):
            content = content if isinstance(content, str) else list(content)
        else:
            raise TypeError(
                f"Modality '{self.name}' received {type(content).__name__}; expected a string, a list of words, or a "
                f"mapping with 'text' or 'tokens' (and 'spans')")
        if not (content.strip() if isinstance(content, str) else content):
            raise ValueError(
                f"Modality '{self.name}' received empty text ({content!r} has no tokens); leave the '{self.name}' "
                f"key out of a sample that has no text")
        return content, spans

    def _split(self, raw: Any) -> tuple[Any, Any]:
        """``(text or tokens, spans or None)`` of a raw input."""
        if isinstance(raw, Mapping):
            unknown = set(raw) - {"text", "tokens", "spans"}
            if unknown or ("text" in raw) == ("tokens" in raw):
                raise ValueError(
                    f"Modality '{self.name}' received a mapping with keys {sorted(raw)}; expected exactly one "
                    f"of 'text' (a string) or 'tokens' (a list of strings), and optionally 'spans'")
            return raw["text"] if "text" in raw else raw["tokens"], raw.get("spans")
        return raw, None

    def _tokens_and_spans(self, raw: Any) -> tuple[list[str], Tensor | None]:
        raw, spans = self._split(raw)
        if isinstance(raw, str):
            tokens = self.tokenizer.tokenize(raw)
        elif isinstance(raw, Sequence) and all(isinstance(token, str) for token in raw):
            tokens = [self.tokenizer.normalize(token) for token in raw]
        else:
            raise TypeError(
                f"Modality '{self.name}' received {type(raw).__name__}; expected a string, a list of token "
                f"strings, or a mapping with 'text' or 'tokens' (and 'spans')")
        if not tokens:
            raise ValueError(
                f"Modality '{self.name}' received empty text ({raw!r} has no tokens); leave the '{self.name}' "
                f"key out of a sample that has no text")
        return tokens, None if spans is None else self._check_spans(spans, len(tokens))

    def _check_spans(self, spans: Any, num_tokens: int, unit: str = "token") -> Tensor:
        if not self.spans:
            raise ValueError(
                f"Modality '{self.name}' received token spans but was built with spans=False; create "
                "TextModality(..., spans=True) to keep them")
        try:
            spans = torch.as_tensor(spans, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"Modality '{self.name}' received spans of type {type(spans).__name__}; expected "
                f"(start, end) pairs in seconds, one per {unit}") from None
        if spans.shape != (num_tokens, 2):
            raise ValueError(
                f"Modality '{self.name}' received spans of shape {tuple(spans.shape)} for {num_tokens} "
                f"{unit}s; expected one (start, end) pair per {unit}: [{num_tokens}, 2]")
        if not bool(torch.isfinite(spans).all()):
            raise ValueError(f"Modality '{self.name}' received NaN/Inf token spans; give finite (start, end) seconds")
        if bool((spans[:, 1] < spans[:, 0]).any()):
            raise ValueError(f"Modality '{self.name}' received a token span whose end is before its start")
        return spans

    def conforms_to_empty(self) -> bool:
        return type(self) is TextModality

    def empty(self) -> NodeSet:
        return NodeSet.empty(dtype=torch.long, pos_shape=(), timed=self.spans)

    def get_config(self) -> dict[str, Any]:
        """The settings, with the tokenizer as the name of what :meth:`save_assets` writes: a graphfuse
        :class:`Tokenizer`'s JSON file, or a Hugging Face tokenizer's ``save_pretrained`` folder."""
        stem = file_stem(self.name)
        if isinstance(self.tokenizer, Tokenizer):
            tokenizer = f"{stem}.tokenizer.json"
        elif callable(getattr(self.tokenizer, "save_pretrained", None)):
            tokenizer = f"{stem}.tokenizer"
        else:
            raise TypeError(f"Modality '{self.name}' cannot save a tokenizer of type {type(self.tokenizer).__name__}; "
                            f"it saves graphfuse Tokenizers and Hugging Face tokenizers (save_pretrained)")
        return {"tokenizer": tokenizer, "max_length": self.max_length, "overflow": self.overflow,
                "window": self.window, "self_loops": self.self_loops, "spans": self.spans}

    def save_assets(self, folder: Path) -> None:
        """Writes the tokenizer into ``folder``: graphfuse's JSON format (:meth:`Tokenizer.save`), or a
        Hugging Face tokenizer's ``save_pretrained`` files in a folder of their own."""
        path = Path(folder) / TextModality.get_config(self)["tokenizer"]
        if isinstance(self.tokenizer, Tokenizer):
            self.tokenizer.save(path)
        else:
            self.tokenizer.save_pretrained(str(path))

    @classmethod
    def from_config(cls, config: Mapping[str, Any], folder: Path | None = None) -> TextModality:
        config = dict(config)
        return cls(saved_tokenizer(config.pop("tokenizer", None), folder, cls.__name__), **config)

    def node_spec(self) -> NodeSpec:
        return dataclasses.replace(super().node_spec(), num_embeddings=len(self.tokenizer),
                                   max_positions=self.max_length)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(vocab_size={len(self.tokenizer)}, max_length={self.max_length}, "
                f"window={self.window}, spans={self.spans})")


def saved_tokenizer(name: Any, folder: Path | None, owner: str) -> Any:
    """The tokenizer :meth:`TextModality.save_assets` wrote as ``name`` into ``folder``: a graphfuse
    :class:`Tokenizer` file, or a Hugging Face tokenizer's folder."""
    if folder is None:
        raise ValueError(f"{owner}.from_config needs the folder holding its tokenizer")
    path = asset_path(folder, name, f"{owner} config 'tokenizer'")
    if path.is_dir():
        return load_tokenizer(path, owner)
    if not path.is_file():
        raise FileNotFoundError(f"The tokenizer {path} is missing; the saved folder is incomplete, save it again")
    return Tokenizer.load(path)
