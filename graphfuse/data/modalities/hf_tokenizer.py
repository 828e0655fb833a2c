"""Hugging Face tokenizers in text modalities, duck-typed so that graphfuse itself needs no transformers."""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
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


def _word_ids(word_ids: Any, tokenizer: Any, owner: str) -> list[int | None]:
    """The word of each token, from an encoding's ``word_ids`` (a callable; ``None`` where it has none)."""
    try:
        if callable(word_ids):
            return list(word_ids())
    except ValueError:  # transformers' slow tokenizers raise it
        pass
    raise _slow_tokenizer_error(tokenizer, owner)


def _batches(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` is a transformers tokenizer, which encodes a list of texts in one call."""
    return any(cls.__name__ == "PreTrainedTokenizerBase" and cls.__module__.startswith("transformers.")
               for cls in type(tokenizer).__mro__)


def _encodings(tokenizer: Any, contents: list[str] | list[list[str]], split: bool,
               **options: Any) -> list[tuple[list[int], Any]]:
    """``(input_ids, word_ids)`` of each content (``word_ids`` a callable, or ``None``), with special tokens:
    one call on all of them for a transformers tokenizer, one call per content for another."""
    kwargs = {"add_special_tokens": True, **({"is_split_into_words": True} if split else {}), **options}
    if _batches(tokenizer):
        encoding = tokenizer(contents, **kwargs)
        return [(encoding["input_ids"][i], functools.partial(encoding.word_ids, i)) for i in range(len(contents))]
    return [(encoding["input_ids"], getattr(encoding, "word_ids", None))
            for encoding in (tokenizer(content, **kwargs) for content in contents)]


def hf_encode(tokenizer: Any, contents: Sequence[str | list[str]], word_spans: Sequence[Any],
              max_length: int | None, overflow: str, owner: str,
              check_spans: Callable[[Any, int], Tensor]) -> list[tuple[Tensor, Tensor | None]]:
    """Token ids of each content (a string, or a list of words) with the tokenizer's special tokens,
    and, when its ``word_spans`` (one ``(start, end)`` per word) are given, each token's time span:
    its word's (``NaN`` for special tokens), through the fast tokenizer's ``word_ids()``. The words of
    a string are those of the tokenizer's pre-tokenizer. Longer than ``max_length`` tokens:
    truncated by the tokenizer (which keeps the closing special token) or an error, per
    ``overflow``. A transformers tokenizer encodes all the strings in one call, and all the word
    lists in another."""
    results: dict[int, tuple[Tensor, Tensor | None]] = {}
    for split in (False, True):
        indices = [i for i, content in enumerate(contents) if isinstance(content, list) == split]
        if not indices:
            continue
        encodings = _encodings(tokenizer, [contents[i] for i in indices], split)
        spans = {}
        for k, i in enumerate(indices):
            if word_spans[i] is not None:
                word_ids = _word_ids(encodings[k][1], tokenizer, owner)
                num_words = len(contents[i]) if split else 1 + max((w for w in word_ids if w is not None), default=-1)
                spans[k] = check_spans(word_spans[i], num_words)
        too_long = [k for k, (ids, _) in enumerate(encodings) if max_length is not None and len(ids) > max_length]
        if too_long and overflow == "error":
            raise ValueError(f"{owner} received {len(encodings[too_long[0]][0])} tokens, more than "
                             f"max_length={max_length}; shorten the text, raise max_length, or use overflow='truncate'")
        if too_long:
            truncated = _encodings(tokenizer, [contents[indices[k]] for k in too_long], split, truncation=True,
                                   max_length=max_length)
            for k, encoding in zip(too_long, truncated, strict=True):
                encodings[k] = encoding
        for k, i in enumerate(indices):
            ids = torch.as_tensor(list(encodings[k][0]), dtype=torch.long)
            time = None
            if k in spans:
                time = torch.full((ids.numel(), 2), float("nan"))
                for token, word in enumerate(_word_ids(encodings[k][1], tokenizer, owner)):
                    if word is not None:
                        time[token] = spans[k][word]
            results[i] = (ids, time)
    return [results[i] for i in range(len(contents))]
