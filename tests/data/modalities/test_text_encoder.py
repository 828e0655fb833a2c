import pytest
import torch

from graphfuse import TextEncoderModality, TextModality

pytest.importorskip("transformers")


def test_token_nodes_carry_hidden_states_positions_and_word_times(hf_tokenizer, bert):
    modality = TextEncoderModality(hf_tokenizer, bert, spans=True, device="cpu")
    raw = {"tokens": ["reddish", "squares"], "spans": [[0.0, 0.5], [0.5, 1.0]]}
    nodes = modality(raw)
    reference = TextModality(hf_tokenizer, spans=True)(raw)
    ids = reference.x
    expected = bert.eval()(input_ids=ids[None]).last_hidden_state[0]
    torch.testing.assert_close(nodes.x, expected)
    assert torch.equal(nodes.pos, torch.arange(ids.numel())) and torch.equal(nodes.edge_index, reference.edge_index)
    torch.testing.assert_close(nodes.time, reference.time, equal_nan=True)
    spec = modality.node_spec()
    assert (spec.kind, spec.feature_shape, spec.integer, spec.positions, spec.timed) == ("text-encoder", (32,), False,
                                                                                         (), True)
    assert modality.max_length == 64  # the encoder's max_position_embeddings


def test_fine_tuned_nodes_are_token_ids_with_the_vocabulary(hf_tokenizer, bert):
    modality = TextEncoderModality(hf_tokenizer, bert, trainable=True)
    spec = modality.node_spec()
    assert spec.integer and spec.num_embeddings == len(hf_tokenizer) and spec.backbone is modality.backbone
    assert modality("a red square").x.tolist() == hf_tokenizer("a red square")["input_ids"]


def test_tokenizer_and_encoder_load_from_local_folders(hf_tokenizer, bert, tmp_path):
    hf_tokenizer.save_pretrained(tmp_path / "tok")
    bert.save_pretrained(tmp_path / "bert")
    modality = TextEncoderModality(tmp_path / "tok", tmp_path / "bert", device="cpu")
    torch.testing.assert_close(modality("a red square").x, TextEncoderModality(hf_tokenizer, bert)("a red square").x)
    with pytest.raises(ValueError, match="not a local folder; graphfuse never downloads"):
        TextEncoderModality("bert-base-uncased", bert)
