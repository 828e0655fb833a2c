"""Properties of tokenizer files (hypothesis): whatever JSON a file holds (wrong types, any regular
expression, hostile ones included), Tokenizer.load returns a working tokenizer or raises a ValueError
naming the file; a saved tokenizer loads back equal."""
import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from properties import outcome

from graphfuse.data import Tokenizer

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=6)
PATTERNS = st.one_of(st.text(alphabet="ab()[]{}|*+?.\\^$-,0123456789:<=!P", max_size=12),
                     st.sampled_from([r"\w+|[^\w\s]", r"\S+", r"a{99999999999}", "(" * 2000 + ")" * 2000,
                                      r"(?<=a+)b", r"(a+)+", r"\d"]))


def payloads():
    valid = {"format": st.just("graphfuse-tokenizer"), "version": st.just(1),
             "tokens": st.lists(st.text(min_size=1, max_size=4), max_size=5, unique=True),
             "lowercase": st.booleans(), "pattern": PATTERNS}
    return st.fixed_dictionaries({key: st.one_of(value, value, JSON) for key, value in valid.items()})


@given(payload=payloads(), text=st.text(max_size=20))
@example(payload={"format": "graphfuse-tokenizer", "version": 1, "tokens": [], "lowercase": True,
                  "pattern": "a{99999999999}"}, text="")  # was a raw OverflowError
@example(payload={"format": "graphfuse-tokenizer", "version": 1, "tokens": [], "lowercase": True,
                  "pattern": "(" * 2000 + ")" * 2000}, text="")  # was a RecursionError
@example(payload={"format": "graphfuse-tokenizer", "version": 1, "tokens": [], "lowercase": True,
                  "pattern": "(?<=a+)b"}, text="")  # was a re.error that named no file
def test_any_tokenizer_file_loads_or_is_refused_by_name(payload, text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tokenizer.json"
        path.write_text(json.dumps(payload), encoding="utf-8")
        tokenizer, _ = outcome(Tokenizer.load, path, names=(str(path),))
    if tokenizer is not None:
        ids = tokenizer.encode(text)
        assert ids.dtype.is_floating_point is False and all(0 <= i < len(tokenizer) for i in ids.tolist())


@pytest.mark.usefixtures("one_thread")
@given(vocabulary=st.lists(st.text(min_size=1, max_size=6), max_size=8, unique=True), lowercase=st.booleans())
def test_a_saved_tokenizer_loads_back_equal(vocabulary, lowercase):
    tokenizer = Tokenizer(vocabulary, lowercase=lowercase)
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save(Path(folder) / "t.json")
        loaded = Tokenizer.load(Path(folder) / "t.json")
    assert (loaded.itos, loaded.lowercase, loaded.pattern) == (tokenizer.itos, tokenizer.lowercase, tokenizer.pattern)


WORDY_TEXT = st.one_of(
    st.text(),
    st.lists(st.text(st.characters(categories=("L", "N")), min_size=1, max_size=6), max_size=6).map(" ".join),
    st.text(alphabet=st.sampled_from(["a", "B", "7", "_", " ", "\t", ",", "İ", "ß", "٣", "\u00a0"]), max_size=12),
)


@given(text=WORDY_TEXT, lowercase=st.booleans())
@example(text="a,b c", lowercase=True)
def test_the_default_pattern_tokens_are_the_regular_expressions(text, lowercase):
    tokenizer = Tokenizer(lowercase=lowercase)
    assert tokenizer.tokenize(text) == re.findall(r"\w+|[^\w\s]", text.lower() if lowercase else text)
