"""Speech synthesised on the machine with espeak-ng (from the ``espeakng-loader`` wheel): no download.

:func:`synthesize` speaks a text with one :class:`Voice` (an espeak-ng voice variant, speaking rate,
pitch and pitch range). espeak-ng keeps one global state per process, so calls are serialised.

Reproducibility: espeak-ng's voice variants add random variation (its random generator is seeded
before every call here) and carry synthesis state from one call to the next in static variables
that nothing resets. A waveform is therefore fixed by the sequence of calls since the process
started: :func:`synthesize_all` speaks a list in a fresh process, which gives the same waveforms
on every run (lengths are always exact).
"""
from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

#: espeak-ng English voices: language variants and voice variants (``en+<variant>``).
VOICES = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en+m1", "en+m3", "en+m5", "en+m7", "en+f1",
          "en+f2", "en+f4", "en+klatt", "en+croak", "en+whisper", "en+Andy", "en+Annie", "en+Denis", "en+john",
          "en+linda")
#: What espeak-ng's synthesiser produces (mono, 16-bit).
SAMPLE_RATE = 22050

_AUDIO_OUTPUT_RETRIEVAL = 1
_POS_CHARACTER = 1
_RATE, _PITCH, _RANGE = 1, 3, 4
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@dataclass(frozen=True)
class Voice:
    """How a text is spoken: an espeak-ng ``name`` (see :data:`VOICES`), ``rate`` in words per
    minute (80-450), ``pitch`` and pitch ``range`` (0-100)."""

    name: str = "en"
    rate: int = 175
    pitch: int = 50
    range: int = 50

    def __post_init__(self) -> None:
        if not 80 <= self.rate <= 450:
            raise ValueError(f"Voice 'rate' must be 80-450 words per minute, got {self.rate}")
        for field in ("pitch", "range"):
            if not 0 <= getattr(self, field) <= 100:
                raise ValueError(f"Voice '{field}' must be 0-100, got {getattr(self, field)}")


class _Engine:
    """The loaded espeak-ng library, set to hand audio back through a callback."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as error:
            raise ImportError("speech synthesis needs espeak-ng, which the benchmark extra brings: "
                              "pip install 'graphfuse[bench]' (espeakng-loader; espeak-ng is GPL-3.0-or-later)"
                              ) from error
        self.library = ctypes.CDLL(espeakng_loader.get_library_path())
        rate = self.library.espeak_Initialize(_AUDIO_OUTPUT_RETRIEVAL, 0,
                                              espeakng_loader.get_data_path().encode(), 0)
        if rate != SAMPLE_RATE:
            raise RuntimeError(f"espeak-ng failed to start (it returned {rate}, expected rate {SAMPLE_RATE})")
        self.chunks: list[np.ndarray] = []
        self.callback = _CALLBACK(self._collect)  # kept referenced: espeak-ng calls it later
        self.library.espeak_SetSynthCallback(self.callback)
        self.voice: Voice | None = None

    def _collect(self, samples, count: int, events) -> int:
        if count > 0:
            self.chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0

    def set_voice(self, voice: Voice) -> None:
        if voice == self.voice:
            return
        if self.library.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice.name!r}; try one of {VOICES}")
        for parameter, value in ((_RATE, voice.rate), (_PITCH, voice.pitch), (_RANGE, voice.range)):
            self.library.espeak_SetParameter(parameter, value, 0)
        self.voice = voice

    def speak(self, text: str, voice: Voice) -> np.ndarray:
        self.set_voice(voice)
        self.chunks = []
        encoded = text.encode()
        self.library.espeak_ng_SetRandSeed(0)
        status = self.library.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, 0, None, None)
        self.library.espeak_Synchronize()
        if status != 0:
            raise RuntimeError(f"espeak-ng could not speak {text!r} (status {status})")
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.int16)


_engine: _Engine | None = None
_lock = threading.Lock()


def synthesize(text: str, voice: Voice = Voice()) -> np.ndarray:
    """``text`` spoken by ``voice``: a float32 waveform in [-1, 1] at :data:`SAMPLE_RATE` Hz."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"synthesize needs a non-empty text, got {text!r}")
    global _engine
    with _lock:
        if _engine is None:
            _engine = _Engine()
        samples = _engine.speak(text, voice)
    return samples.astype(np.float32) / 32768.0


def downsample(waveform: np.ndarray, factor: int) -> np.ndarray:
    """``waveform`` at 1/``factor`` of its rate, averaging each run of ``factor`` samples (a box
    low-pass against aliasing); a tail shorter than ``factor`` is dropped."""
    usable = len(waveform) // factor * factor
    return waveform[:usable].reshape(-1, factor).mean(axis=1)


def synthesize_all(requests: list[tuple[str, Voice]]) -> list[np.ndarray]:
    """``synthesize(text, voice)`` for each ``(text, voice)`` of ``requests``, in that order, in a
    fresh Python process: the same list gives the same waveforms in every run (see the module
    docstring)."""
    with tempfile.TemporaryDirectory(prefix="graphfuse-speech-") as folder:
        asked, spoken = Path(folder) / "requests.json", Path(folder) / "waveforms.npz"
        asked.write_text(json.dumps([[text, asdict(voice)] for text, voice in requests]))
        done = subprocess.run([sys.executable, "-m", "graphfuse.datasets.speech", str(asked), str(spoken)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"speech synthesis failed in its process (exit {done.returncode}):\n{done.stderr}")
        with np.load(spoken) as waveforms:
            return [waveforms[str(i)] for i in range(len(requests))]


if __name__ == "__main__":  # synthesize_all's fresh process: python -m graphfuse.datasets.speech IN OUT
    asked_path, spoken_path = sys.argv[1:3]
    requests = [(text, Voice(**voice)) for text, voice in json.loads(Path(asked_path).read_text())]
    np.savez(spoken_path, **{str(i): synthesize(text, voice) for i, (text, voice) in enumerate(requests)})
