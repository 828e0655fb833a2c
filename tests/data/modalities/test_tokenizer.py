import json
import re

import pytest
import torch

import graphfuse.io
from graphfuse.data import Tokenizer

CORPUS = ["c a b a", "B c a", "d"]  # lower-cased counts: a 3, c 2, b 2 (c seen first), d 1


def test_special_ids():
    tokenizer = Tokenizer(["hello"])
    assert (tokenizer.pad_id, tokenizer.unk_id) == (0, 1)
    assert tokenizer.itos[:2] == ["<pad>", "<unk>"]
    assert tokenizer.stoi["hello"] == 2
    assert len(tokenizer) == 3
    # The special tokens are never duplicated when a vocabulary lists them.
    assert Tokenizer(["<unk>", "x", "<pad>"]).itos == ["<pad>", "<unk>", "x"]


def test_from_corpus_orders_by_frequency_then_first_appearance():
    tokenizer = Tokenizer.from_corpus(CORPUS)
    assert tokenizer.itos == ["<pad>", "<unk>", "a", "c", "b", "d"]


def test_from_corpus_min_freq_and_max_size():
    assert Tokenizer.from_corpus(CORPUS, min_freq=2).itos[2:] == ["a", "c", "b"]
    assert Tokenizer.from_corpus(CORPUS, min_freq=3).itos[2:] == ["a"]
    assert Tokenizer.from_corpus(CORPUS, max_size=2).itos[2:] == ["a", "c"]
    assert Tokenizer.from_corpus(CORPUS, max_size=0).itos == ["<pad>", "<unk>"]


def test_special_tokens_in_the_corpus_do_not_take_vocabulary_places():
    corpus = [["<unk>", "<unk>", "<pad>", "a", "b"]]
    assert Tokenizer.from_corpus(corpus, max_size=2).itos == ["<pad>", "<unk>", "a", "b"]


def test_from_corpus_case_sensitive():
    tokenizer = Tokenizer.from_corpus(CORPUS, lowercase=False)
    assert tokenizer.itos[2:] == ["a", "c", "b", "B", "d"]
    assert tokenizer.encode("b B").tolist() == [4, 5]
    lower = Tokenizer.from_corpus(CORPUS)
    assert lower.encode("b B").tolist() == [4, 4]


def test_from_corpus_accepts_token_lists():
    tokenizer = Tokenizer.from_corpus([["New", "York"], ["york"]])
    assert tokenizer.itos[2:] == ["york", "new"]


@pytest.mark.parametrize("kwargs, match", [
    ({"min_freq": 0}, "'min_freq' must be >= 1"),
    ({"max_size": -1}, "'max_size' must be >= 0"),
])
def test_from_corpus_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Tokenizer.from_corpus(CORPUS, **kwargs)


@pytest.mark.parametrize("corpus, what", [
    ("a red square", r", e\.g\. from_corpus\(\['a red square'\]\), got str 'a red square'"),
    (None, r", .*got NoneType None"),
    (7, r", .*got int 7"),
    ([1, 2], r"; text 0 is int 1"),
    (["a red square", ["red", 3]], r"; text 1 is list \['red', 3\]"),
    ([b"red"], r"; text 0 is bytes b'red'"),
], ids=["str", "None", "int", "ints", "token-list-with-an-int", "bytes"])
def test_from_corpus_refuses_what_is_not_a_list_of_texts(corpus, what):
    with pytest.raises(TypeError, match=r"Tokenizer\.from_corpus expects a list of texts, each a string or a list of "
                                        r"token strings" + what):
        Tokenizer.from_corpus(corpus)


def test_from_corpus_accepts_any_iterable_of_texts_and_token_sequences():
    texts = ["Red square", ("blue", "circle"), iter(["red"])]
    tokenizer = Tokenizer.from_corpus(text for text in texts)
    assert tokenizer.itos[2:] == ["red", "square", "blue", "circle"]


@pytest.mark.parametrize("vocabulary, shown", [("red blue", "str 'red blue'"), (None, "NoneType None"), (3, "int 3")])
def test_a_vocabulary_that_is_not_a_list_of_tokens_is_refused(vocabulary, shown):
    with pytest.raises(TypeError, match=rf"Tokenizer expects a list of vocabulary tokens, e\.g\. Tokenizer\(\['red', "
                                        rf"'blue'\]\), got {shown}; to build the vocabulary from texts, use "
                                        rf"Tokenizer\.from_corpus"):
        Tokenizer(vocabulary)
    assert Tokenizer(("red", "blue")).itos[2:] == Tokenizer(["red", "blue"]).itos[2:] == ["red", "blue"]


@pytest.mark.parametrize("vocabulary, match", [
    (["a", ""], "non-empty strings"),
    (["a", 3], "non-empty strings"),
    (["a", "a"], "duplicate tokens"),
])
def test_bad_vocabulary(vocabulary, match):
    with pytest.raises(ValueError, match=match):
        Tokenizer(vocabulary)


def test_tokenize_splits_words_and_punctuation():
    assert Tokenizer().tokenize("Hello, World!") == ["hello", ",", "world", "!"]


@pytest.mark.parametrize("text, tokens", [
    ("Two  spaced words ", ["two", "spaced", "words"]),  # words and spaces only: split at the spaces
    ("snake_case word", ["snake_case", "word"]),  # "_" is a word character of the pattern, not alphanumeric
    ("one,two three", ["one", ",", "two", "three"]),  # one mark among words and spaces
    ("tab\tand\nnewline", ["tab", "and", "newline"]),
    ("Straße ٣ İ", ["straße", "٣", "i", "\u0307"]),  # "İ" lower-cases to "i" and a combining dot
    ("", []),
    ("   ", []),
])
def test_tokenize_agrees_with_the_pattern_on_plain_words_and_beyond(text, tokens):
    assert Tokenizer().tokenize(text) == tokens
    assert Tokenizer(lowercase=False).tokenize(text) == re.findall(r"\w+|[^\w\s]", text)


def test_a_tokenizer_with_its_own_pattern_splits_plain_words_by_it():
    assert Tokenizer(pattern=r"\w").tokenize("ab cd") == ["a", "b", "c", "d"]


def test_encode_decode():
    tokenizer = Tokenizer.from_corpus(CORPUS)
    ids = tokenizer.encode("A b zebra d")
    assert ids.dtype == torch.long
    assert ids.tolist() == [2, 4, 1, 5]
    assert tokenizer.decode(ids) == ["a", "b", "<unk>", "d"]
    assert tokenizer.decode([0, 4, 99, -1]) == ["<pad>", "b", "<unk>", "<unk>"]
    # A pre-tokenised list is normalised but not split again.
    assert tokenizer.encode(["A", "b c"]).tolist() == [2, 1]
    assert tokenizer.encode("").shape == (0,)
    assert "A" in tokenizer and "zebra" not in tokenizer


def test_save_load_round_trip(tmp_path):
    tokenizer = Tokenizer.from_corpus(CORPUS + ["Ünïcode words, ok?"], lowercase=False)
    path = tmp_path / "tokenizer.json"
    tokenizer.save(path)
    loaded = Tokenizer.load(path)
    assert loaded.itos == tokenizer.itos
    assert (loaded.lowercase, loaded.pattern) == (tokenizer.lowercase, tokenizer.pattern)
    text = "a B Ünïcode unknown words ?"
    assert torch.equal(loaded.encode(text), tokenizer.encode(text))
    assert loaded.encode(text).tolist().count(1) == 1  # only "unknown" is out of vocabulary
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]


def test_save_replaces_existing_file(tmp_path):
    path = tmp_path / "tokenizer.json"
    Tokenizer(["old"]).save(path)
    Tokenizer(["new", "words"]).save(path)
    assert Tokenizer.load(path).itos[2:] == ["new", "words"]


def test_failed_save_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "tokenizer.json"
    Tokenizer(["old"]).save(path)
    before = path.read_bytes()

    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(graphfuse.io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        Tokenizer(["new"]).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]
    monkeypatch.undo()
    assert Tokenizer.load(path).itos[2:] == ["old"]


def write_json(path, payload):
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


@pytest.mark.parametrize("payload, match", [
    ({"tokens": ["a"]}, "is not a graphfuse tokenizer file .no \"format\""),
    ([1, 2, 3], "is not a graphfuse tokenizer file"),
    ({"format": "graphfuse-tokenizer", "version": 2, "lowercase": True, "pattern": r"\w+", "tokens": []},
     "is a version 2 tokenizer file; this graphfuse reads version 1"),
    ({"format": "graphfuse-tokenizer", "lowercase": True, "pattern": r"\w+", "tokens": []},
     "is a version None tokenizer file"),
    ({"format": "graphfuse-tokenizer", "version": 1, "tokens": ["a"]},
     r"is a damaged graphfuse tokenizer file: it lacks \['lowercase', 'pattern'\]"),
])
def test_load_rejects_other_json(tmp_path, payload, match):
    path = write_json(tmp_path / "other.json", payload)
    with pytest.raises(ValueError, match=match):
        Tokenizer.load(path)


def test_load_rejects_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"format": "graphfuse-tokenizer", ', encoding="utf-8")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        Tokenizer.load(path)


def test_repr():
    assert repr(Tokenizer(["a", "b"])) == "Tokenizer(vocab_size=4, lowercase=True)"


def _tokenizer_file(tmp_path, **changes):
    payload = {"format": "graphfuse-tokenizer", "version": 1, "lowercase": True, "pattern": r"\w+|[^\w\s]",
               "tokens": ["red", "blue"], **changes}
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(payload))
    return path


@pytest.mark.parametrize("field, value, expected", [
    ("tokens", "red blue", "must be a list of strings, got str"),
    ("tokens", ["red", 3], "must be a list of strings, got list"),
    ("lowercase", "false", "must be true or false, got str"),
    ("pattern", 5, "must be a string, got int"),
])
def test_a_wrongly_typed_tokenizer_file_is_refused(tmp_path, field, value, expected):
    with pytest.raises(ValueError, match=f'damaged graphfuse tokenizer file: "{field}" {expected}'):
        Tokenizer.load(_tokenizer_file(tmp_path, **{field: value}))


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(\w+\s?)*$", r"(a|ab)*c"])
def test_a_pattern_that_could_backtrack_catastrophically_is_refused_from_a_file(tmp_path, pattern):
    # (\w+\s?)*$ on 29 characters ending in "!" took 20 s, doubling with each character
    with pytest.raises(ValueError, match="could take time exponential in the text's length"):
        Tokenizer.load(_tokenizer_file(tmp_path, pattern=pattern))
    with pytest.raises(ValueError, match="not a valid regular expression"):
        Tokenizer.load(_tokenizer_file(tmp_path, pattern="("))


def test_safe_patterns_load(tmp_path):
    for pattern in (r"\w+|[^\w\s]", r"\S+", r"[a-z]+(?:'[a-z]+)?"):
        assert Tokenizer.load(_tokenizer_file(tmp_path, pattern=pattern)).pattern == pattern
