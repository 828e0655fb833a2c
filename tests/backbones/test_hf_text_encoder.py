import pytest
import torch

from graphfuse.backbones import HFTextEncoder

pytest.importorskip("transformers")


def test_last_or_chosen_hidden_layer(bert):
    bert.eval()
    ids = torch.randint(4, 50, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    encoder = HFTextEncoder(bert)
    assert encoder.out_channels == 32 and encoder.max_positions == 64
    assert torch.equal(encoder(ids, mask), bert(input_ids=ids, attention_mask=mask).last_hidden_state)
    first = HFTextEncoder(bert, layer=1)(ids, mask)
    assert torch.equal(first, bert(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[1])
    assert torch.equal(HFTextEncoder(bert).forward_nodes(ids, mask.bool()), encoder(ids, mask))


def test_bad_layer_and_bad_model_raise(bert):
    with pytest.raises(ValueError, match=r"layer=9 but the model has 3 hidden states"):
        HFTextEncoder(bert, layer=9)(torch.randint(4, 50, (1, 3)))
    with pytest.raises(TypeError, match="expects a transformers model"):
        HFTextEncoder(object())
    with pytest.raises(ValueError, match="not a local folder; graphfuse never downloads"):
        HFTextEncoder("bert-base-uncased")


def test_config_rebuilds_with_random_weights_and_weights_load(bert, tmp_path):
    encoder = HFTextEncoder(bert, layer=-1).eval()
    config = encoder.get_config()
    assert config["model_class"] == "BertModel" and config["layer"] == -1 and "pooler" not in config["modules"]
    rebuilt = HFTextEncoder.from_config(config).eval()
    assert rebuilt.model.pooler is None
    ids = torch.randint(4, 50, (2, 5))
    assert not torch.allclose(rebuilt(ids), encoder(ids))
    encoder.save_weights(tmp_path / "w.safetensors")
    rebuilt.load_weights(tmp_path / "w.safetensors")
    assert torch.equal(rebuilt(ids), encoder(ids))


def test_a_local_pretrained_folder_loads(bert, tmp_path):
    bert.save_pretrained(tmp_path / "bert")
    encoder = HFTextEncoder(tmp_path / "bert").eval()
    ids = torch.randint(4, 50, (1, 4))
    assert torch.allclose(encoder(ids), bert.eval()(input_ids=ids).last_hidden_state)
