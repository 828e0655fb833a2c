import pytest
import torch

from graphfuse.backbones import HFSpeechEncoder

pytest.importorskip("transformers")


def test_hop_receptive_field_and_frame_count_match_the_model(wav2vec2):
    encoder = HFSpeechEncoder(wav2vec2).eval()
    assert (encoder.hop, encoder.receptive_field) == (20, 40)
    for num_samples in (40, 41, 59, 60, 333):
        expected = int(wav2vec2._get_feat_extract_output_lengths(torch.tensor(num_samples)))
        assert encoder.num_frames(num_samples) == expected
        assert encoder(torch.randn(1, num_samples)).shape == (1, expected, 32)
    assert torch.allclose(encoder.frame_times(3), torch.tensor([[0, 40], [20, 60], [40, 80]]) / 16000)


def test_hop_chunks_padded_give_one_frame_each(wav2vec2):
    encoder = HFSpeechEncoder(wav2vec2).eval()
    chunks = torch.randn(2, 7, 20)
    hidden = encoder.forward_nodes(chunks, torch.ones(2, 7, dtype=torch.bool))
    waveform = torch.nn.functional.pad(chunks.reshape(2, 140), (0, 20))
    assert hidden.shape == (2, 7, 32) and torch.allclose(hidden, encoder(waveform))


def test_config_keeps_the_sample_rate(wav2vec2):
    config = HFSpeechEncoder(wav2vec2, sample_rate=8000).get_config()
    assert config["sample_rate"] == 8000 and config["model_class"] == "Wav2Vec2Model"
    assert HFSpeechEncoder.from_config(config).sample_rate == 8000


def test_a_model_without_a_conv_stack_is_refused(bert):
    with pytest.raises(TypeError, match="conv_kernel and conv_stride"):
        HFSpeechEncoder(bert)
