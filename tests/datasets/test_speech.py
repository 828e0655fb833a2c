import numpy as np
import pytest

from graphfuse.datasets.speech import SAMPLE_RATE, VOICES, Voice, downsample, synthesize, synthesize_all


def test_synthesize_speaks_a_word():
    waveform = synthesize("seven")
    assert waveform.dtype == np.float32
    assert 0.2 < len(waveform) / SAMPLE_RATE < 1.5
    assert 0.05 < np.abs(waveform).max() <= 1.0


def test_voices_rates_and_pitches_differ():
    slow = synthesize("seven", Voice("en", rate=120))
    fast = synthesize("seven", Voice("en", rate=300))
    assert len(slow) > 1.3 * len(fast)
    low, high = synthesize("one", Voice("en+m3", pitch=10)), synthesize("one", Voice("en+m3", pitch=90))
    assert not np.array_equal(low[:1000], high[:1000])


def test_synthesis_repeats_a_word_up_to_espeaks_carried_state():
    # In one process espeak-ng's waveforms depend on the calls before (synthesize_all is exact);
    # the length, hence every word's timing, is always exact.
    first, again = synthesize("three", Voice("en+f2")), synthesize("three", Voice("en+f2"))
    assert len(first) == len(again)
    assert np.corrcoef(first, again)[0, 1] > 0.5
    assert abs(np.corrcoef(first[:len(first) // 2], synthesize("four", Voice("en+f2"))[:len(first) // 2])[0, 1]) < 0.5


def test_every_listed_voice_exists():
    for name in VOICES:
        assert synthesize("two", Voice(name)).size > 0


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_text_is_refused(text):
    with pytest.raises(ValueError, match="non-empty text"):
        synthesize(text)


def test_unknown_voice_is_refused():
    with pytest.raises(ValueError, match="no voice 'xx-nonexistent'"):
        synthesize("one", Voice("xx-nonexistent"))


@pytest.mark.parametrize("field, value", [("rate", 20), ("pitch", 101), ("range", -1)])
def test_voice_settings_are_checked(field, value):
    with pytest.raises(ValueError, match=f"Voice '{field}'"):
        Voice(**{field: value})


def test_downsample_averages_runs():
    assert np.allclose(downsample(np.arange(7, dtype=np.float32), 2), [0.5, 2.5, 4.5])


def test_synthesize_all_gives_the_same_waveforms_every_run():
    requests = [("seven", Voice("en+f2")), ("three", Voice("en+whisper", rate=220)), ("seven", Voice("en+f2"))]
    first, again = synthesize_all(requests), synthesize_all(requests)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert len(first[0]) == len(first[2]) and len(first[0]) == len(synthesize("seven", Voice("en+f2")))


def test_synthesize_all_reports_a_failure():
    with pytest.raises(RuntimeError, match="speech synthesis failed in its process"):
        synthesize_all([("one", Voice("xx-nonexistent"))])
