"""A word-level tokenizer whose vocabulary is built from a corpus, saved and loaded as JSON."""
from __future__ import annotations

import array
import itertools
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from graphfuse.checkpoint import CheckpointError, read_json
from graphfuse.config import short_repr
from graphfuse.io import atomic_write_text

try:  # the parser of Python's own re module (re._parser from 3.11, sre_parse before)
    import re._constants as _constants
    import re._parser as _regex_parser
except ImportError:  # Python 3.10
    import sre_constants as _constants
    import sre_parse as _regex_parser

# Python 3.11 adds possessive repeats (a*+); they never backtrack, but repeating one is still nested.
_POSSESSIVE_REPEAT = getattr(_constants, "POSSESSIVE_REPEAT", None)

PAD, UNK = "<pad>", "<unk>"
_FORMAT = "graphfuse-tokenizer"
_VERSION = 1
_DEFAULT_PATTERN = r"\w+|[^\w\s]"


class Tokenizer:
    r"""Splits text into words and punctuation and maps them to ids.

    Id ``0`` is the padding token ``<pad>`` and id ``1`` the unknown token ``<unk>``; every
    token outside the vocabulary maps to ``<unk>``.

    Args:
        vocabulary (Sequence[str]): the known tokens, without the two special tokens.
        lowercase (bool, optional): lower-case text and tokens before look-up.
            (default: :obj:`True`)
        pattern (str, optional): regular expression whose matches are the tokens.
            (default: words and single punctuation marks)
    """

    def __init__(self, vocabulary: Sequence[str] = (), lowercase: bool = True,
                 pattern: str = _DEFAULT_PATTERN) -> None:
        if isinstance(vocabulary, (str, bytes)) or not isinstance(vocabulary, Iterable):
            raise TypeError(f"Tokenizer expects a list of vocabulary tokens, e.g. Tokenizer(['red', 'blue']), got "
                            f"{type(vocabulary).__name__} {short_repr(vocabulary, 40)}; to build the vocabulary from "
                            f"texts, use Tokenizer.from_corpus([text, ...])")
        self.lowercase = lowercase
        self.pattern = pattern
        self._regex = re.compile(pattern)
        self.itos: list[str] = [PAD, UNK]
        for token in vocabulary:
            if not isinstance(token, str) or not token:
                raise ValueError(f"Tokenizer vocabulary entries must be non-empty strings, got {token!r}")
            if token not in (PAD, UNK):
                self.itos.append(token)
        self.stoi = {token: i for i, token in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("Tokenizer vocabulary has duplicate tokens")

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return self.normalize(token) in self.stoi

    def normalize(self, token: str) -> str:
        return token.lower() if self.lowercase else token

    def tokenize(self, text: str) -> list[str]:
        """Splits ``text`` into normalised tokens."""
        text = self.normalize(text)
        # str.isalnum is the regular expression's \w without "_": where spaces part runs of letters and digits,
        # the default pattern's tokens are those runs, which str.split finds about three times as fast.
        if self.pattern == _DEFAULT_PATTERN and text.replace(" ", "").isalnum():
            return text.split()
        return self._regex.findall(text)

    def encode(self, text: str | Sequence[str]) -> Tensor:
        """A string (tokenised first) or a list of tokens -> ``torch.long`` ids."""
        return self.encode_many([text])[0]

    def encode_many(self, texts: Sequence[str | Sequence[str]]) -> list[Tensor]:
        """:meth:`encode` of each text, looked up together (:meth:`ids_many`)."""
        return self.ids_many([self.tokenize(text) if isinstance(text, str) else [self.normalize(t) for t in text]
                              for text in texts])

    def ids_many(self, token_lists: Sequence[Sequence[str]]) -> list[Tensor]:
        """The ids of lists of normalised tokens (:meth:`tokenize`'s output), looked up in one pass into
        one ``torch.long`` tensor; each list's ids are a view of it."""
        # map() over the flat tokens into an int64 array, which torch takes as a buffer: a third of the
        # time of a list comprehension into torch.tensor
        ids = array.array("q", map(self.stoi.get, itertools.chain.from_iterable(token_lists),
                                   itertools.repeat(self.unk_id)))
        flat = torch.frombuffer(ids, dtype=torch.long) if ids else torch.empty(0, dtype=torch.long)
        return list(flat.split([len(tokens) for tokens in token_lists]))

    def decode(self, ids: Tensor | Iterable[int]) -> list[str]:
        ids = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        return [self.itos[i] if 0 <= i < len(self.itos) else UNK for i in ids]

    @classmethod
    def from_corpus(cls, corpus: Iterable[str | Sequence[str]], min_freq: int = 1,
                    max_size: int | None = None, lowercase: bool = True,
                    pattern: str = _DEFAULT_PATTERN) -> Tokenizer:
        """Builds the vocabulary from ``corpus`` (strings or token lists).

        Tokens seen at least ``min_freq`` times are kept, most frequent first (ties in order
        of first appearance), at most ``max_size`` of them besides the special tokens.
        """
        if min_freq < 1:
            raise ValueError(f"'min_freq' must be >= 1, got {min_freq}")
        if max_size is not None and max_size < 0:
            raise ValueError(f"'max_size' must be >= 0 or None, got {max_size}")
        if isinstance(corpus, (str, bytes)) or not isinstance(corpus, Iterable):
            raise TypeError(f"Tokenizer.from_corpus expects a list of texts, each a string or a list of token "
                            f"strings, e.g. from_corpus(['a red square']), got {type(corpus).__name__} "
                            f"{short_repr(corpus, 40)}")
        scratch = cls(lowercase=lowercase, pattern=pattern)
        counts: Counter = Counter()
        for index, text in enumerate(corpus):
            if isinstance(text, str):
                tokens = scratch.tokenize(text)
            else:
                tokens = list(text) if isinstance(text, Iterable) and not isinstance(text, bytes) else None
                if tokens is None or not all(isinstance(token, str) for token in tokens):
                    raise TypeError(f"Tokenizer.from_corpus expects a list of texts, each a string or a list of "
                                    f"token strings; text {index} is {type(text).__name__} {short_repr(text, 40)}")
                tokens = [scratch.normalize(token) for token in tokens]
            counts.update(tokens)
        kept = [token for token, count in counts.most_common() if count >= min_freq and token not in (PAD, UNK)]
        if max_size is not None:
            kept = kept[:max_size]
        return cls(kept, lowercase=lowercase, pattern=pattern)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the tokenizer as JSON; an existing file is replaced only once the new one is complete."""
        payload = {"format": _FORMAT, "version": _VERSION, "lowercase": self.lowercase,
                   "pattern": self.pattern, "tokens": self.itos[2:]}
        atomic_write_text(path, json.dumps(payload, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        payload = read_json(path, "the tokenizer")
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise CheckpointError(f"'{path}' is not a graphfuse tokenizer file (no \"format\": \"{_FORMAT}\")")
        if payload.get("version") != _VERSION:
            raise CheckpointError(
                f"'{path}' is a version {short_repr(payload.get('version'), 40)} tokenizer file; this graphfuse "
                f"reads version {_VERSION}")
        missing = {"tokens", "lowercase", "pattern"} - payload.keys()
        if missing:
            raise CheckpointError(f"'{path}' is a damaged graphfuse tokenizer file: it lacks {sorted(missing)}")
        tokens, lowercase, pattern = payload["tokens"], payload["lowercase"], payload["pattern"]
        token_list = isinstance(tokens, list) and all(isinstance(token, str) for token in tokens)
        for name, value, expected, ok in (("tokens", tokens, "a list of strings", token_list),
                                          ("lowercase", lowercase, "true or false", isinstance(lowercase, bool)),
                                          ("pattern", pattern, "a string", isinstance(pattern, str))):
            if not ok:
                raise CheckpointError(f"'{path}' is a damaged graphfuse tokenizer file: \"{name}\" must be {expected}, "
                                      f"got {type(value).__name__} {short_repr(value, 40)}")
        check_pattern(pattern, f"'{path}'")
        return cls(tokens, lowercase=lowercase, pattern=pattern)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(vocab_size={len(self)}, lowercase={self.lowercase})"


def check_pattern(pattern: str, source: str) -> None:
    """Refuses a regular expression from ``source`` (a file) that could backtrack catastrophically: a
    repetition that holds another unbounded repetition or an alternation (``(a+)+``, ``(a|ab)*``),
    whose matching time can double with every character of the text. Conservative: some such
    patterns are safe (``(?:\\d+,)*``), and are refused all the same, since a file is not trusted."""
    try:
        parsed = _regex_parser.parse(pattern)
        re.compile(pattern)  # what parsing leaves to compilation: look-behind width, ...
    except (re.error, OverflowError, RecursionError) as error:  # a{99999999999}; groups nested ~500 deep
        raise ValueError(f"{source} holds the tokenizer pattern {pattern!r}, which is not a valid regular expression "
                         f"({error})") from None
    if _nested_repetition(parsed, inside_repeat=False):
        raise ValueError(
            f"{source} holds the tokenizer pattern {pattern!r}, which repeats a repetition or an alternation and could "
            f"take time exponential in the text's length; graphfuse does not run such a pattern from a file. Use a "
            f"pattern without nested repetition (e.g. the default {_DEFAULT_PATTERN!r}), or build the Tokenizer in "
            f"your code with the pattern you trust")


def _nested_repetition(items, inside_repeat: bool) -> bool:
    for op, value in items:
        if op in (_constants.MAX_REPEAT, _constants.MIN_REPEAT, _POSSESSIVE_REPEAT):
            low, high, body = value
            unbounded = high is _constants.MAXREPEAT or high > 1
            if unbounded and inside_repeat:
                return True
            if _nested_repetition(body, inside_repeat or unbounded):
                return True
        elif op is _constants.BRANCH:
            if inside_repeat:
                return True
            if any(_nested_repetition(branch, inside_repeat) for branch in value[1]):
                return True
        elif op is _constants.SUBPATTERN:
            if _nested_repetition(value[-1], inside_repeat):
                return True
        elif op in (_constants.ASSERT, _constants.ASSERT_NOT):
            if _nested_repetition(value[1], inside_repeat):
                return True
    return False
