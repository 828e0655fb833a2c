import math

import pytest
import torch

from graphfuse.data import TextModality, Tokenizer

WORDS = ["the", "cat", "sat", "on", "the", "mat"]
SPANS = [[0.0, 0.2], [0.2, 0.5], [0.5, 0.6], [0.6, 0.7], [0.7, 0.8], [0.8, 1.25]]


def edge_list(edge_index):
    return [tuple(edge) for edge in edge_index.t().tolist()]


def chain_reference(num_nodes, window, self_loops=False):
    return {(i, j) for i in range(num_nodes) for j in range(num_nodes)
            if 1 <= abs(i - j) <= window or (self_loops and i == j)}


def test_string_to_token_nodes(tokenizer):
    nodes = TextModality(tokenizer)("The cat sat on the zebra!")
    tokens = ["the", "cat", "sat", "on", "the", "zebra", "!"]
    assert nodes.x.dtype == torch.long
    assert nodes.x.tolist() == [tokenizer.stoi.get(token, 1) for token in tokens]
    assert nodes.x[5:].tolist() == [1, 1]  # "zebra" and "!" are not in the vocabulary
    assert nodes.x[0] == nodes.x[4] != 1
    assert torch.equal(nodes.pos, torch.arange(7))
    assert nodes.time is None
    assert nodes.validate("text") is nodes


@pytest.mark.parametrize("num_tokens", [1, 2, 3, 6])
@pytest.mark.parametrize("window", [1, 2, 3])
@pytest.mark.parametrize("self_loops", [False, True])
def test_chain_edges_match_brute_force(tokenizer, num_tokens, window, self_loops):
    nodes = TextModality(tokenizer, window=window, self_loops=self_loops)(WORDS[:num_tokens])
    edges = edge_list(nodes.edge_index)
    assert nodes.edge_index.dtype == torch.long
    assert len(edges) == len(set(edges))  # no duplicate edge
    assert set(edges) == chain_reference(num_tokens, window, self_loops)


def test_window_two_edge_count(tokenizer):
    nodes = TextModality(tokenizer, window=2)(WORDS)
    assert nodes.num_edges == 2 * (5 + 4)


def test_pretokenised_list_equals_string(tokenizer):
    modality = TextModality(tokenizer)
    from_list = modality(["The", "CAT", "sat"])
    from_string = modality("the cat sat")
    for name in ("x", "pos", "edge_index"):
        assert torch.equal(getattr(from_list, name), getattr(from_string, name))
    # A list is not split again: one token per entry, even with spaces inside.
    assert modality(["the cat", "sat"]).num_nodes == 2


@pytest.mark.parametrize("key, value", [("text", " ".join(WORDS)), ("tokens", WORDS)])
def test_mapping_with_spans_gives_time(tokenizer, key, value):
    nodes = TextModality(tokenizer, spans=True)({key: value, "spans": SPANS})
    assert nodes.time.dtype == torch.float32
    assert torch.equal(nodes.time, torch.tensor(SPANS))
    assert torch.equal(nodes.x, tokenizer.encode(WORDS))
    nodes.validate("text")


def test_spans_without_spans_in_input_are_nan(tokenizer):
    modality = TextModality(tokenizer, spans=True)
    for raw in ("the cat sat", {"text": "the cat sat"}, {"tokens": ["the", "cat", "sat"], "spans": None}):
        nodes = modality(raw)
        assert nodes.time.shape == (3, 2)
        assert bool(nodes.time.isnan().all())


def test_spans_given_to_modality_without_spans(tokenizer):
    with pytest.raises(ValueError, match="Modality 'text' received token spans but was built with spans=False"):
        TextModality(tokenizer)({"tokens": WORDS, "spans": SPANS})


@pytest.mark.parametrize("spans, error, match", [
    (SPANS[:5], ValueError, r"spans of shape \(5, 2\) for 6 tokens; expected one \(start, end\) pair per token"),
    ([[0.0, 0.1, 0.2]] * 6, ValueError, r"spans of shape \(6, 3\) for 6 tokens"),
    (SPANS[:5] + [[0.8, math.nan]], ValueError, "NaN/Inf token spans"),
    (SPANS[:5] + [[0.8, math.inf]], ValueError, "NaN/Inf token spans"),
    (SPANS[:5] + [[0.9, 0.8]], ValueError, "token span whose end is before its start"),
    ("not spans", TypeError, r"spans of type str; expected \(start, end\) pairs"),
])
def test_bad_spans(tokenizer, spans, error, match):
    with pytest.raises(error, match=f"Modality 'text' received .*{match}"):
        TextModality(tokenizer, spans=True)({"tokens": WORDS, "spans": spans})


def test_truncate_keeps_first_tokens_and_spans(tokenizer):
    modality = TextModality(tokenizer, max_length=4, spans=True)
    nodes = modality({"tokens": WORDS, "spans": SPANS})
    assert torch.equal(nodes.x, tokenizer.encode(WORDS[:4]))
    assert torch.equal(nodes.time, torch.tensor(SPANS[:4]))
    assert torch.equal(nodes.pos, torch.arange(4))
    assert set(edge_list(nodes.edge_index)) == chain_reference(4, 1)
    # Inputs no longer than max_length are kept whole.
    assert modality(WORDS[:4]).num_nodes == 4


def test_overflow_error(tokenizer):
    modality = TextModality(tokenizer, max_length=4, overflow="error")
    assert modality(WORDS[:4]).num_nodes == 4
    with pytest.raises(ValueError, match="Modality 'text' received 6 tokens, more than max_length=4"):
        modality(WORDS)


@pytest.mark.parametrize("raw", ["", "   ", [], {"text": ""}, {"tokens": []}])
@pytest.mark.parametrize("spans", [False, True])
def test_empty_text(tokenizer, raw, spans):
    with pytest.raises(ValueError, match="Modality 'text' received empty text"):
        TextModality(tokenizer, spans=spans)(raw)


def test_empty_text_with_empty_spans_is_reported_as_empty_text(tokenizer):
    with pytest.raises(ValueError, match="Modality 'text' received empty text"):
        TextModality(tokenizer, spans=True)({"text": "", "spans": []})


@pytest.mark.parametrize("raw, received", [
    (5, "int"), (None, "NoneType"), ([1, 2], "list"), (["a", 2], "list"), (b"bytes", "bytes"),
    ({"text": 3}, "int"), (torch.tensor([1, 2]), "Tensor"),
])
def test_wrong_type(tokenizer, raw, received):
    with pytest.raises(TypeError, match=f"Modality 'text' received {received}; expected a string, a list of token"):
        TextModality(tokenizer)(raw)


@pytest.mark.parametrize("raw", [
    {"text": "a", "tokens": ["a"]}, {"words": "a"}, {"spans": [[0, 1]]}, {"text": "a", "extra": 1},
])
def test_mapping_with_wrong_keys(tokenizer, raw):
    with pytest.raises(ValueError, match="Modality 'text' received a mapping with keys .*; expected exactly one of"):
        TextModality(tokenizer)(raw)


def test_error_names_the_modality_key(tokenizer):
    modality = TextModality(tokenizer)
    modality.name = "caption"
    with pytest.raises(ValueError, match="Modality 'caption' received empty text"):
        modality("")


@pytest.mark.parametrize("kwargs, error, match", [
    ({"tokenizer": "vocab.json"}, TypeError, "expects a graphfuse Tokenizer or a Hugging Face tokenizer, got str"),
    ({"max_length": 0}, ValueError, "TextModality 'max_length' must be an integer >= 1"),
    ({"overflow": "drop"}, ValueError, "TextModality 'overflow' must be one of .'truncate', 'error'."),
    ({"window": 0}, ValueError, "TextModality 'window' must be an integer >= 1"),
])
def test_bad_arguments(kwargs, error, match):
    kwargs = {"tokenizer": Tokenizer(["a"]), **kwargs}
    with pytest.raises(error, match=match):
        TextModality(**kwargs)


@pytest.mark.parametrize("spans", [False, True])
def test_empty_node_set(tokenizer, spans):
    modality = TextModality(tokenizer, spans=spans)
    empty = modality.empty()
    full = modality("the cat")
    assert empty.x.shape == (0,) and empty.x.dtype == full.x.dtype
    assert empty.pos.shape == (0,) and empty.pos.dtype == full.pos.dtype
    assert empty.edge_index.shape == (2, 0)
    assert (empty.time is None) == (full.time is None) == (not spans)
    if spans:
        assert empty.time.shape == (0, 2)
    empty.validate("text")


def test_registration_and_repr(tokenizer):
    modality = TextModality(tokenizer, max_length=8, window=2)
    assert (modality.name, modality.relation) == ("text", "seq")
    assert repr(modality) == f"TextModality(vocab_size={len(tokenizer)}, max_length=8, window=2, spans=False)"
