import pytest
import torch

from graphfuse import SpeechEncoderModality

pytest.importorskip("transformers")


def test_frame_nodes_with_times(wav2vec2):
    modality = SpeechEncoderModality(wav2vec2, device="cpu")
    waveform = torch.randn(2, 333)  # stereo: averaged
    nodes = modality({"array": waveform.numpy(), "sampling_rate": 16000, "path": None})
    assert nodes.x.shape == (15, 32) and torch.equal(nodes.pos, torch.arange(15))  # (333 - 40) // 20 + 1
    assert torch.allclose(nodes.time[1], torch.tensor([20, 60]) / 16000)
    spec = modality.node_spec()
    assert spec.timed and spec.positions == () and spec.feature_shape == (32,)


def test_fine_tuned_nodes_are_hop_chunks_of_the_normalised_waveform(wav2vec2):
    modality = SpeechEncoderModality(wav2vec2, trainable=True)
    waveform = torch.randn(333)
    nodes = modality(waveform)
    normalised = (waveform - waveform.mean()) / torch.sqrt(waveform.var(unbiased=False) + 1e-7)
    assert nodes.x.shape == (15, 20) and torch.equal(nodes.x.flatten(), normalised[:300])
    assert modality(torch.randn(10)).num_nodes == 1  # shorter than the receptive field: padded to one frame


def test_another_sample_rate_raises(wav2vec2):
    with pytest.raises(ValueError, match="received audio at 8000 Hz, but its encoder takes 16000 Hz; resample"):
        SpeechEncoderModality(wav2vec2)((torch.randn(400), 8000))
