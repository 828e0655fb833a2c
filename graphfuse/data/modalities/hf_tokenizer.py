"""Hugging Face tokenizers in text modalities, duck-typed so that graphfuse itself needs no transformers."""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from graphfuse.backbones.huggingface import import_transformers


def is_hf_tokenizer(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` looks like a Hugging Face tokenizer: callable on text, with
    ``convert_ids_to_tokens`` and a vocabulary size (``len``)."""
    return callable(tokenizer) and hasattr(tokenizer, "convert_ids_to_tokens") and hasattr(tokenizer, "__len__")


def load_tokenizer(tokenizer: Any, owner: str) -> Any:
    """A Hugging Face tokenizer, or the one saved in a local folder (nothing is downloaded)."""
    if not isinstance(tokenizer, (str, os.PathLike)):
        return tokenizer
    if not os.path.isdir(tokenizer):
        raise ValueError(f"{owner} was given the tokenizer {os.fspath(tokenizer)!r}, not a local folder; "
                         f"graphfuse never downloads: save it with tokenizer.save_pretrained(folder), then pass that")
    return import_transformers(owner).AutoTokenizer.from_pretrained(os.fspath(tokenizer), local_files_only=True)


def _slow_tokenizer_error(tokenizer: Any, owner: str) -> ValueError:
    return ValueError(
        f"{owner} needs a fast tokenizer to give subword tokens their word's time span (spans=True), got the slow "
        f"{type(tokenizer).__name__}, which has no offsets or word_ids(); load a fast one, e.g. "
        f"AutoTokenizer.from_pretrained(folder, use_fast=True), or use spans=False")


def check_word_ids_support(tokenizer: Any, owner: str) -> None:
    """Raises unless ``tokenizer`` can map its tokens to words (a fast tokenizer's ``word_ids()``)."""
    if getattr(tokenizer, "is_fast", True) is False:
        raise _slow_tokenizer_error(tokenizer, owner)


def _word_ids(encoding: Any, tokenizer: Any, owner: str) -> list[int | None]:
    word_ids = getattr(encoding, "word_ids", None)
    try:
        if callable(word_ids):
            return list(word_ids())
    except ValueError:  # transformers' slow tokenizers raise it
        pass
    raise _slow_tokenizer_error(tokenizer, owner)


def hf_encode(tokenizer: Any, content: str | list[str], word_spans: Any, max_length: int | None, overflow: str,
              owner: str, check_spans: Callable[[Any, int], Tensor]) -> tuple[Tensor, Tensor | None]:
    """Token ids of ``content`` (a string, or a list of words) with the tokenizer's special tokens,
    and, when ``word_spans`` (one ``(start, end)`` per word) are given, each token's time span: its
    word's (``NaN`` for special tokens), through the fast tokenizer's ``word_ids()``. The words of a
    string are those of the tokenizer's pre-tokenizer. Longer than ``max_length`` tokens: truncated
    by the tokenizer (which keeps the closing special token) or an error, per ``overflow``."""
    split = isinstance(content, list)
    kwargs = {"add_special_tokens": True, **({"is_split_into_words": True} if split else {})}
    encoding = tokenizer(content, **kwargs)
    num_words = None
    if word_spans is not None:
        word_ids = _word_ids(encoding, tokenizer, owner)
        num_words = len(content) if split else 1 + max((w for w in word_ids if w is not None), default=-1)
        word_spans = check_spans(word_spans, num_words)
    if max_length is not None and len(encoding["input_ids"]) > max_length:
        if overflow == "error":
            raise ValueError(f"{owner} received {len(encoding['input_ids'])} tokens, more than "
                             f"max_length={max_length}; shorten the text, raise max_length, or use overflow='truncate'")
        encoding = tokenizer(content, truncation=True, max_length=max_length, **kwargs)
    ids = torch.as_tensor(list(encoding["input_ids"]), dtype=torch.long)
    if word_spans is None:
        return ids, None
    time = torch.full((ids.numel(), 2), float("nan"))
    for token, word in enumerate(_word_ids(encoding, tokenizer, owner)):
        if word is not None:
            time[token] = word_spans[word]
    return ids, time
