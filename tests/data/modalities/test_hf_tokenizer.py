"""TextModality with a Hugging Face tokenizer."""
import pytest
import torch

from graphfuse import TextModality

pytest.importorskip("transformers")
NAN = float("nan")


def test_subword_ids_with_special_tokens_are_the_nodes(hf_tokenizer):
    modality = TextModality(hf_tokenizer)
    nodes = modality("a red square")
    expected = hf_tokenizer("a red square")["input_ids"]
    assert nodes.x.tolist() == expected and nodes.x.dtype == torch.long
    assert hf_tokenizer.convert_ids_to_tokens(nodes.x)[0] == "[CLS]"
    assert nodes.pos.tolist() == list(range(len(expected))) and nodes.structure[:2] == ("chain", len(expected))
    assert modality.node_spec().num_embeddings == len(hf_tokenizer)


def test_word_spans_reach_every_subword(hf_tokenizer):
    modality = TextModality(hf_tokenizer, spans=True)
    words = ["reddish", "squares"]
    nodes = modality({"tokens": words, "spans": [[0.0, 0.5], [0.5, 1.0]]})
    word_ids = hf_tokenizer(words, is_split_into_words=True).word_ids()
    assert len(word_ids) > 4  # "reddish" splits into several subwords
    expected = torch.tensor([[NAN, NAN] if word is None else [[0.0, 0.5], [0.5, 1.0]][word] for word in word_ids])
    torch.testing.assert_close(nodes.time, expected, equal_nan=True)
    from_text = modality({"text": "reddish squares", "spans": [[0.0, 0.5], [0.5, 1.0]]})
    torch.testing.assert_close(from_text.time, nodes.time, equal_nan=True)
    assert modality("no spans here").time.isnan().all()


def test_span_count_must_match_the_words(hf_tokenizer):
    with pytest.raises(ValueError, match=r"spans of shape \(1, 2\) for 2 words; expected one \(start, end\) pair per "
                                         r"word"):
        TextModality(hf_tokenizer, spans=True)({"text": "red square", "spans": [[0, 1]]})


def test_max_length_truncates_with_the_tokenizer_or_raises(hf_tokenizer):
    nodes = TextModality(hf_tokenizer, max_length=4)("the cat sat on the mat")
    assert nodes.num_nodes == 4 and hf_tokenizer.convert_ids_to_tokens(nodes.x)[-1] == "[SEP]"
    with pytest.raises(ValueError, match="more than max_length=4"):
        TextModality(hf_tokenizer, max_length=4, overflow="error")("the cat sat on the mat")
    with pytest.raises(ValueError, match="received empty text"):
        TextModality(hf_tokenizer)("   ")


class SlowTokenizer:
    """A tokenizer without offsets or word_ids (a transformers 'slow' tokenizer)."""

    is_fast = False

    def __call__(self, text, **kwargs):
        return {"input_ids": [1, 2, 3]}

    def convert_ids_to_tokens(self, ids):
        return ["x"] * len(ids)

    def __len__(self):
        return 4


def test_a_slow_tokenizer_cannot_give_spans():
    assert TextModality(SlowTokenizer())("any").x.tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="needs a fast tokenizer to give subword tokens their word's time span"):
        TextModality(SlowTokenizer(), spans=True)
    slow = TextModality(SlowTokenizer())
    slow.spans = True  # past the constructor's check, featurising finds no word_ids() either
    with pytest.raises(ValueError, match="has no offsets or word_ids"):
        slow({"text": "any", "spans": [[0, 1]]})
