import math
import re
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from graphfuse.data import AudioModality, mel_filter_bank
from graphfuse.data.modalities import audio


def noise(num_samples, seed=0, channels=None):
    shape = (num_samples,) if channels is None else (channels, num_samples)
    return 0.1 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def tone(frequency, seconds, sample_rate):
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return torch.from_numpy(0.5 * np.sin(2 * np.pi * frequency * t)).float()


def window_and_hop(sample_rate):
    return round(0.025 * sample_rate), round(0.010 * sample_rate)


# --- an independent numpy reference --------------------------------------------------------------

def hz_to_mel(frequency):
    return 2595.0 * np.log10(1.0 + np.asarray(frequency) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


def mel_band_edges(n_mels, f_min, f_max):
    """The n_mels + 2 points evenly spaced in mel, in Hz: band m runs from point m to m + 2 and peaks at m + 1."""
    return mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))


def mel_bank_reference(n_freqs, n_mels, sample_rate, f_min, f_max):
    frequencies = np.arange(n_freqs) * sample_rate / (2.0 * (n_freqs - 1))
    edges = mel_band_edges(n_mels, f_min, f_max)
    bank = np.zeros((n_freqs, n_mels))
    for m in range(n_mels):
        lower, centre, upper = edges[m:m + 3]
        up = (frequencies >= lower) & (frequencies <= centre)
        down = (frequencies > centre) & (frequencies <= upper)
        bank[up, m] = (frequencies[up] - lower) / (centre - lower)
        bank[down, m] = (upper - frequencies[down]) / (upper - centre)
    return bank


def log_mel_reference(signal, sample_rate, n_mels, f_min=0.0, f_max=None):
    signal = np.asarray(signal, dtype=np.float64)
    win, hop = window_and_hop(sample_rate)
    if len(signal) < win:
        signal = np.concatenate([signal, np.zeros(win - len(signal))])
    num_frames = 1 + (len(signal) - win) // hop
    frames = np.stack([signal[i * hop:i * hop + win] for i in range(num_frames)])
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win) / win)  # periodic
    n_fft = 1
    while n_fft < win:
        n_fft *= 2
    power = np.abs(np.fft.rfft(frames * hann, n=n_fft)) ** 2
    bank = mel_bank_reference(n_fft // 2 + 1, n_mels, sample_rate, f_min, sample_rate / 2 if f_max is None else f_max)
    return np.log(power @ bank + 1e-6)


# --- features --------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_freqs, n_mels, sample_rate, f_min, f_max", [
    (257, 40, 16000, 0.0, 8000.0), (513, 64, 44100, 20.0, 20000.0), (129, 8, 8000, 300.0, 3000.0),
])
def test_mel_filter_bank_matches_reference(n_freqs, n_mels, sample_rate, f_min, f_max):
    bank = mel_filter_bank(n_freqs, n_mels, sample_rate, f_min, f_max)
    assert bank.shape == (n_freqs, n_mels) and bank.dtype == torch.float32
    reference = mel_bank_reference(n_freqs, n_mels, sample_rate, f_min, f_max)
    np.testing.assert_allclose(bank.numpy(), reference, atol=1e-5)
    assert float(bank.max()) <= 1.0 + 1e-6


@pytest.mark.parametrize("sample_rate, n_mels, f_min, f_max, seconds", [
    (16000, 64, 0.0, None, 0.3), (16000, 20, 100.0, 4000.0, 0.2), (22050, 32, 0.0, None, 0.25),
    (8000, 16, 0.0, None, 0.1),
])
def test_log_mel_matches_numpy_reference(sample_rate, n_mels, f_min, f_max, seconds):
    signal = noise(round(seconds * sample_rate), seed=sample_rate)
    modality = AudioModality(sample_rate=sample_rate, n_mels=n_mels, f_min=f_min, f_max=f_max)
    nodes = modality(signal)
    reference = log_mel_reference(signal.numpy(), sample_rate, n_mels, f_min, f_max)
    assert nodes.x.dtype == torch.float32
    assert nodes.x.shape == reference.shape
    np.testing.assert_allclose(nodes.x.numpy(), reference, rtol=1e-4, atol=1e-3)
    nodes.validate("audio")


def test_features_do_not_depend_on_what_was_featurised_before():
    """Frames are transformed in buffers that each thread keeps from call to call: after calls with
    another window (16 and 20 kHz share the 512-point FFT with windows of 400 and 500 samples) and
    with more or fewer frames, a clip's features are still the reference's."""
    modality = AudioModality(n_mels=16)
    clips = [noise(1_600, 1), noise(48_000, 2), noise(500, 3)]
    for sample_rate in (20_000, 16_000, 20_000, 16_000):
        for clip in clips:
            reference = log_mel_reference(clip.numpy(), sample_rate, 16, f_max=8000.0)
            np.testing.assert_allclose(modality((clip, sample_rate)).x.numpy(), reference, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("sample_rate, n_fft", [(16_000, 512), (48_000, 2048)])
def test_frames_are_transformed_a_few_kilobytes_at_a_time(monkeypatch, sample_rate, n_fft):
    """Three frames a chunk whatever the FFT's length: clips of 7 and 1 frames end inside a chunk."""
    monkeypatch.setattr(audio, "_CHUNK_BYTES", 3 * 4 * n_fft)
    modality = AudioModality(sample_rate=sample_rate, n_mels=16)
    for seconds in (0.085, 0.02):
        clip = noise(round(seconds * sample_rate), seed=sample_rate)
        reference = log_mel_reference(clip.numpy(), sample_rate, 16)
        np.testing.assert_allclose(modality(clip).x.numpy(), reference, rtol=1e-4, atol=1e-3)


def test_threads_featurise_at_once_each_in_buffers_of_its_own():
    modality = AudioModality(n_mels=16)
    clips = [noise(16_000 + 160 * i, seed=i) for i in range(8)]
    expected = [nodes.x for nodes in modality.featurize_many(clips)]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            for x, reference in zip(pool.map(lambda clip: modality(clip).x, clips), expected, strict=True):
                torch.testing.assert_close(x, reference, rtol=1e-6, atol=1e-6)


def test_featurising_in_inference_mode_then_outside_it():
    """A thread's first buffers, made in inference mode, are written outside it afterwards."""
    def in_then_out():
        with torch.inference_mode():
            inside = AudioModality(n_mels=8)(noise(4_000)).x
        return inside, AudioModality(n_mels=8)(noise(4_000)).x

    with ThreadPoolExecutor(1) as pool:  # a thread that has featurised nothing yet
        inside, outside = pool.submit(in_then_out).result()
    torch.testing.assert_close(inside.clone(), outside)


@pytest.mark.parametrize("frequency", [250.0, 440.0, 1000.0, 2500.0, 6000.0])
def test_tone_peaks_in_nearest_band(frequency):
    n_mels = 40
    nodes = AudioModality(sample_rate=16000, n_mels=n_mels)(tone(frequency, 0.2, 16000))
    centres = mel_band_edges(n_mels, 0.0, 8000.0)[1:-1]
    nearest = int(np.argmin(np.abs(centres - frequency)))
    assert nodes.x.argmax(dim=1).tolist() == [nearest] * nodes.num_nodes


def test_same_tone_at_two_rates_gives_matching_frames():
    modality = AudioModality(sample_rate=16000, n_mels=40)
    low = modality(tone(1000.0, 0.5, 16000))
    high = modality((tone(1000.0, 0.5, 32000), 32000))
    assert low.num_nodes == high.num_nodes == 48
    assert torch.allclose(low.time, high.time, atol=1e-7, rtol=0)
    assert torch.equal(low.x.argmax(dim=1), high.x.argmax(dim=1))


# --- frames and times ------------------------------------------------------------------------------

@pytest.mark.parametrize("sample_rate, num_samples", [
    (16000, 400), (16000, 559), (16000, 560), (16000, 8123), (22050, 5000), (44100, 4410), (8000, 200),
])
def test_frame_count_and_times(sample_rate, num_samples):
    win, hop = window_and_hop(sample_rate)
    nodes = AudioModality(sample_rate=sample_rate, n_mels=8)(noise(num_samples))
    num_frames = 1 + (num_samples - win) // hop
    assert nodes.x.shape == (num_frames, 8)
    assert torch.equal(nodes.pos, torch.arange(num_frames))
    start = torch.arange(num_frames, dtype=torch.float64) * hop / sample_rate
    expected = torch.stack([start, start + win / sample_rate], dim=1)
    assert nodes.time.dtype == torch.float32
    assert torch.allclose(nodes.time.double(), expected, atol=1e-6, rtol=0)


def test_short_clip_padded_to_one_frame():
    clip = noise(100)
    nodes = AudioModality(sample_rate=16000, n_mels=16)(clip)
    assert nodes.num_nodes == 1 and nodes.num_edges == 0
    assert torch.allclose(nodes.time, torch.tensor([[0.0, 0.025]]))
    np.testing.assert_allclose(nodes.x.numpy(), log_mel_reference(clip.numpy(), 16000, 16), rtol=1e-4, atol=1e-3)
    padded = AudioModality(sample_rate=16000, n_mels=16)(torch.cat([clip, torch.zeros(300)]))
    assert torch.allclose(nodes.x, padded.x, atol=1e-5)


def test_channels_are_averaged():
    stereo = noise(4000, channels=2)
    modality = AudioModality(sample_rate=16000, n_mels=16)
    nodes = modality(stereo)
    mono = modality((stereo[0] + stereo[1]) / 2)
    assert torch.allclose(nodes.x, mono.x, atol=1e-4)
    assert torch.equal(nodes.time, mono.time)
    assert torch.allclose(modality(stereo[:1]).x, modality(stereo[0]).x)


def test_int16_is_scaled_pcm():
    pcm = torch.randint(-32768, 32768, (4000,), dtype=torch.int16, generator=torch.Generator().manual_seed(3))
    modality = AudioModality(sample_rate=16000, n_mels=16)
    assert torch.allclose(modality(pcm).x, modality(pcm.float() / 32768).x, atol=1e-5)


@pytest.mark.parametrize("wrap", [
    lambda wave: wave.numpy(),
    lambda wave: wave.double(),
    lambda wave: (wave, 16000),
    lambda wave: (wave, 16000.0),
    lambda wave: {"waveform": wave, "sample_rate": 16000},
    lambda wave: {"array": wave.numpy().astype(np.float64), "sampling_rate": 16000},  # Hugging Face datasets
    lambda wave: {"array": wave.numpy(), "sampling_rate": 16000, "path": "clip.wav"},
    lambda wave: (wave, np.int64(16000)),
])
def test_input_forms_agree(wrap):
    wave = noise(3000)
    modality = AudioModality(sample_rate=16000, n_mels=16)
    expected = modality(wave)
    nodes = modality(wrap(wave))
    assert torch.allclose(nodes.x, expected.x, atol=1e-5)
    assert torch.equal(nodes.time, expected.time)


@pytest.mark.parametrize("window", [1, 3])
@pytest.mark.parametrize("self_loops", [False, True])
def test_chain_edges(window, self_loops):
    nodes = AudioModality(sample_rate=16000, n_mels=8, window=window, self_loops=self_loops)(noise(1520))
    n = nodes.num_nodes
    edges = [tuple(edge) for edge in nodes.edge_index.t().tolist()]
    assert n == 8 and len(edges) == len(set(edges))
    assert set(edges) == {(i, j) for i in range(n) for j in range(n)
                          if 1 <= abs(i - j) <= window or (self_loops and i == j)}


# --- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("rate, shown", [
    (0, "0"), (-16000, "-16000"), (16000.5, "16000.5"), ("16000", "'16000'"), (True, "True"), (None, "None"),
    (np.int64(-5), "-5"),
])
def test_invalid_sample_rate(rate, shown):
    modality = AudioModality(sample_rate=16000, n_mels=8)
    with pytest.raises(ValueError, match=re.escape(f"Modality 'audio' received sample rate {shown}; expected a "
                                                   "positive integer")):
        modality((noise(800), rate))
    with pytest.raises(ValueError, match="Modality 'audio' received sample rate .*expected a positive integer"):
        AudioModality(sample_rate=rate)


@pytest.mark.parametrize("rate, f_max, needed", [
    (800, None, 16000), (999, 400.0, 1000), (1500, 900.0, 1800), (8000, None, 16000), (15999, None, 16000),
])
def test_unsupported_sample_rate(rate, f_max, needed):
    modality = AudioModality(sample_rate=16000, n_mels=8, f_max=f_max)  # f_max defaults to 8000 Hz
    assert modality((noise(800), needed)).num_nodes >= 1  # the lowest supported rate is accepted
    with pytest.raises(ValueError, match=f"Modality 'audio' does not support sample rate {rate} Hz: it needs at "
                                         f"least {needed} Hz"):
        modality({"waveform": noise(800), "sample_rate": rate})


def test_unsupported_sample_rate_in_constructor():
    with pytest.raises(ValueError, match="does not support sample rate 800 Hz: it needs at least 1000 Hz"):
        AudioModality(sample_rate=800)
    with pytest.raises(ValueError, match="does not support sample rate 16000 Hz: it needs at least 20000 Hz"):
        AudioModality(sample_rate=16000, f_max=10000)


@pytest.mark.parametrize("raw, error, match", [
    (torch.empty(0), ValueError, "received an empty waveform"),
    (torch.empty(2, 0), ValueError, "received an empty waveform"),
    (torch.empty(0, 0), ValueError, "received an empty waveform"),
    (torch.tensor([0.1, float("nan"), 0.2] * 200), ValueError, "received samples with 200 NaN/Inf value"),
    (torch.tensor([0.1, float("-inf")] * 300), ValueError, "received samples with 300 NaN/Inf value"),
    (torch.zeros(1, 2, 800), ValueError, r"received a 3-D waveform of shape \(1, 2, 800\); expected \[T\] or \[C, T\]"),
    (torch.tensor(0.5), ValueError, r"received a 0-D waveform of shape \(\); expected \[T\] or \[C, T\]"),
    (torch.zeros(800, dtype=torch.int32), TypeError,
     "received samples of dtype torch.int32; expected a floating dtype or int16 PCM"),
    (torch.zeros(800, 2), ValueError,
     r"received a waveform of shape \(800, 2\) with more channels than samples \(channels last\? transpose it to "
     r"\[C, T\]\)"),
    ((torch.zeros(800), 16000, 1), ValueError, r"received a tuple of 3 items; expected \(waveform, sample_rate\)"),
    ({"wave": torch.zeros(800), "rate": 16000}, ValueError,
     r"received a mapping with keys \['rate', 'wave'\]; expected 'waveform' and 'sample_rate'"),
    ({"waveform": torch.zeros(800)}, ValueError, r"received a mapping with keys \['waveform'\]"),
    ("speech.wav", TypeError, r"received str; expected a waveform tensor or array \[T\] or \[C, T\]"),
])
def test_bad_waveforms(raw, error, match):
    with pytest.raises(error, match=f"Modality 'audio' {match}"):
        AudioModality(sample_rate=16000, n_mels=8)(raw)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_mels": 0}, "AudioModality 'n_mels' must be an integer >= 1"),
    ({"hop_length": 0.0}, "needs 0 < hop_length <= win_length"),
    ({"hop_length": 0.05}, "needs 0 < hop_length <= win_length"),
    ({"f_min": 9000.0, "f_max": 8000.0}, "needs 0 <= f_min < f_max"),
    ({"f_min": -1.0}, "AudioModality 'f_min' must be a number >= 0"),
    ({"f_max": float("inf")}, r"AudioModality 'f_max' is the highest filter edge in Hz, at most sample_rate / 2; "
                              r"got inf"),
    ({"window": 0}, "AudioModality 'window' must be an integer >= 1"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AudioModality(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"win_length": 400, "hop_length": 160},
     r"400\.0, hop_length=160\.0, a window of 400\.0 seconds; win_length and hop_length are in "
     r"seconds \(e\.g\. 0\.025 and 0\.010\) and win_length must be at most 1 s\. If they are in samples at "
     r"sample_rate=16000 Hz, pass win_length=0\.025, hop_length=0\.01; if in milliseconds, win_length=0\.4, "
     r"hop_length=0\.16$"),
    ({"win_length": 25, "hop_length": 10, "sample_rate": 8000, "f_max": 4000.0},
     r"If they are in samples at sample_rate=8000 Hz, pass win_length=0\.003125, hop_length=0\.00125; if in "
     r"milliseconds, win_length=0\.025, hop_length=0\.01$"),
    ({"win_length": 400, "hop_length": 0.01},
     r"If it is in samples at sample_rate=16000 Hz, pass win_length=0\.025; if in milliseconds, win_length=0\.4$"),
    ({"win_length": 1.5, "hop_length": 0.5}, r"win_length must be at most 1 s$"),
])
def test_a_window_longer_than_a_second_is_refused_as_samples_or_milliseconds(kwargs, match):
    with pytest.raises(ValueError, match=r"AudioModality received win_length=.*" + match):
        AudioModality(**kwargs)


def test_a_window_of_one_second_is_accepted():
    nodes = AudioModality(n_mels=8, win_length=1.0, hop_length=0.5)(noise(32_000))
    assert nodes.num_nodes == 3 and torch.allclose(nodes.time[-1], torch.tensor([1.0, 2.0]))


@pytest.mark.parametrize("n_mels, num_empty", [(128, "1 mel band"), (200, "12 mel bands")])
def test_mel_bands_without_a_frequency_bin_warn_once_when_the_filter_bank_is_made(n_mels, num_empty):
    with pytest.warns(UserWarning, match=rf"AudioModality\(n_mels={n_mels}\) has {num_empty} with no frequency bin at "
                                         r"16000 Hz: its 512-point FFT has bins 31\.2 Hz apart, wider than its lowest "
                                         r"band .* Use fewer mel bands \(n_mels=114 or fewer leaves none empty\) or a "
                                         r"longer win_length"):
        modality = AudioModality(n_mels=n_mels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = modality(noise(4_000)).x  # made once: featurising does not warn again
    assert bool((x[:, 0] == math.log(1e-6)).all())  # the lowest band is the empty one


def test_mel_bands_of_a_clip_at_another_rate_warn_when_its_filter_bank_is_made():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        modality = AudioModality(n_mels=100, f_max=8000.0)  # 16 kHz: 400-sample windows, bins 31.25 Hz apart
    with pytest.warns(UserWarning, match=r"has 1 mel band with no frequency bin at 20000 Hz: its 512-point FFT has "
                                         r"bins 39\.1 Hz apart"):  # 500-sample windows
        modality((noise(20_000), 20_000))


@pytest.mark.parametrize("kwargs", [{"n_mels": 114}, {"n_mels": 128, "win_length": 0.05}, {"n_mels": 64}])
def test_fewer_mel_bands_or_a_longer_window_leave_no_band_empty(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = AudioModality(**kwargs)(noise(16_000)).x
    assert bool((x > math.log(1e-6)).any(dim=0).all())


def test_empty_node_set():
    modality = AudioModality(n_mels=24)
    empty = modality.empty()
    assert empty.x.shape == (0, 24) and empty.x.dtype == torch.float32
    assert empty.pos.shape == (0,) and empty.pos.dtype == torch.long
    assert empty.time.shape == (0, 2) and empty.time.dtype == torch.float32
    assert empty.edge_index.shape == (2, 0)
    empty.validate("audio")


def test_registration_and_repr():
    modality = AudioModality(sample_rate=22050, n_mels=32, window=2)
    assert (modality.name, modality.relation) == ("audio", "seq")
    assert repr(modality) == ("AudioModality(sample_rate=22050, n_mels=32, win_length=0.025, hop_length=0.01, "
                              "window=2)")
