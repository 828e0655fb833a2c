"""Shared helpers of the data set tests."""
import numpy as np
import pytest


def _clip_scores(waveform, clips) -> np.ndarray:
    """For each clip, the best normalised correlation between it and any stretch of ``waveform`` of
    its length: 1 where the clip is in the waveform (at any gain), lower elsewhere."""
    waveform = np.asarray(waveform, dtype=np.float64)
    size = 1 << int(np.ceil(np.log2(len(waveform) + max(len(clip) for clip in clips))))
    spectrum = np.fft.rfft(waveform, size)
    energy = np.concatenate([[0.0], np.cumsum(waveform ** 2)])
    scores = []
    for clip in clips:
        length = len(clip)
        if length > len(waveform):
            scores.append(0.0)
            continue
        correlation = np.fft.irfft(spectrum * np.conj(np.fft.rfft(clip, size)), size)[:len(waveform) - length + 1]
        window = np.sqrt(np.maximum(energy[length:] - energy[:-length], 0.0))
        scores.append(float(np.max(np.abs(correlation) / (window * np.linalg.norm(clip) + 1e-9))))
    return np.array(scores)


@pytest.fixture(scope="session")
def clip_scores():
    """``clip_scores(waveform, clips)``: how well each clip is found in the waveform (1 = exactly, scaled)."""
    return _clip_scores
