"""Audio -> log-mel frame nodes along the time line, computed in torch."""
from __future__ import annotations

import math
import numbers
import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from graphfuse.checks import as_tensor, check_bool, check_finite, check_int, check_number, to_float32
from graphfuse.data.modalities.base import Modality, register_modality
from graphfuse.data.modalities.batching import chain_edges_many, featurizes_as, in_groups, sequence_positions
from graphfuse.data.nodes import NodeSet

_MIN_SAMPLE_RATE = 1000
#: The longest window accepted, in seconds: a longer one was most likely given in samples or milliseconds.
_MAX_WIN_SECONDS = 1.0
#: Frames of short clips laid end to end and featurised in one call (see :func:`frame_groups`).
_FRAME_CHUNK = 2048
#: A clip of this many frames or more (about 5 s at the default hop) is transformed by itself: laying it
#: end to end with others copies its samples and saves only a call's fixed costs (on CPU, clips of 600
#: frames and more went 5-10% faster alone, clips of 300 and 150 frames 9% and 38% slower).
_ALONE_FRAMES = 512
#: Bytes of windowed frames transformed at once (1,024 frames at the default 512-point FFT; their spectra
#: and power add half as much again): see :func:`log_mel`. On CPU, 2 MB was as fast as 4 MB at 16 kHz and
#: 9 to 14% faster at 22.05 and 44.1 kHz (1,024- and 2,048-point FFTs).
_CHUNK_BYTES = 2 << 20
#: Mel filters projected together (see :func:`filter_bands`).
_BAND_WIDTH = 16


def hz_to_mel(frequency: Tensor) -> Tensor:
    """HTK mel scale: :math:`2595 \\log_{10}(1 + f / 700)`."""
    return 2595.0 * torch.log10(1.0 + frequency / 700.0)


def mel_to_hz(mel: Tensor) -> Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filter_bank(n_freqs: int, n_mels: int, sample_rate: int, f_min: float, f_max: float) -> Tensor:
    r"""Triangular filters on the HTK mel scale, :math:`[n_{freqs}, n_{mels}]`.

    Filter :math:`m` rises from 0 at the mel point :math:`m - 1` to 1 at :math:`m` and falls
    back to 0 at :math:`m + 1`; the :math:`n_{mels} + 2` points are evenly spaced in mel
    between ``f_min`` and ``f_max``. Frequency bin :math:`k` sits at
    :math:`k \cdot \text{sample\_rate} / (2 (n_{freqs} - 1))` Hz.
    """
    bin_hz = torch.linspace(0.0, sample_rate / 2.0, n_freqs, dtype=torch.float64)
    mel_range = hz_to_mel(torch.tensor([f_min, f_max], dtype=torch.float64))
    mel_points = torch.linspace(float(mel_range[0]), float(mel_range[1]), n_mels + 2, dtype=torch.float64)
    hz_points = mel_to_hz(mel_points)
    lower, centre, upper = hz_points[:-2], hz_points[1:-1], hz_points[2:]
    rising = (bin_hz[:, None] - lower) / (centre - lower)
    falling = (upper - bin_hz[:, None]) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


def filter_bands(filters: Tensor, width: int = _BAND_WIDTH) -> list[tuple[slice, slice, Tensor]]:
    """A filter bank ``[n_freqs, n_mels]`` cut into blocks of ``width`` adjacent filters, each with the
    frequency bins where any of its filters is non-zero: ``(bins, mels, filters[bins, mels])``. Triangular
    mel filters overlap only their neighbours, so the blocks hold a fraction of the bank, and
    ``power[:, bins] @ block`` for each block is the projection ``power @ filters`` at a fraction of its
    cost (at 64 mels, four blocks of about a quarter of the bins each), with matrices still large
    enough for a fast matmul."""
    bands = []
    for start in range(0, filters.size(1), width):
        mels = slice(start, min(start + width, filters.size(1)))
        used = filters[:, mels].ne(0).any(dim=1).nonzero().flatten().tolist()
        bins = slice(used[0], used[-1] + 1) if used else slice(0, 0)  # no bin at all: those mels are 0
        bands.append((bins, mels, filters[bins, mels].contiguous()))
    return bands


@register_modality("audio")
class AudioModality(Modality):
    r"""Frame nodes: a waveform becomes log-mel frames, one node per frame.

    Frame :math:`i` covers samples :math:`[i h, i h + w)` (window :math:`w`, hop :math:`h`);
    its features are :math:`\log(M |\mathrm{FFT}(\mathrm{hann} \cdot \text{frame})|^2 + 10^{-6})`
    for the mel filter bank :math:`M`. A clip shorter than one window is zero-padded to one
    frame; samples after the last whole frame are dropped.

    Node attributes: ``x`` :math:`[F, n_{mels}]`, ``pos`` the frame index :math:`[F]`,
    ``time`` each frame's ``(start, end)`` in seconds :math:`[F, 2]`. Intra-modal relation
    ``('audio', 'seq', 'audio')`` joins frames at most ``window`` apart.

    Raw input: a waveform :math:`[T]` or :math:`[C, T]` (channels are averaged) at
    ``sample_rate``; or ``(waveform, sample_rate)``; or a mapping with ``"waveform"`` and
    ``"sample_rate"``, or a Hugging Face ``datasets`` audio value (``"array"``,
    ``"sampling_rate"`` and, ignored, ``"path"``). Floating samples, or ``int16`` PCM (scaled by :math:`2^{-15}`). Any
    integer sample rate of at least 1 kHz and at least :math:`2 f_{max}` is accepted: window and
    hop are in seconds and the filter bank in Hz, so frame times and band frequencies agree
    across rates. Levels do not: the power grows with the window length in samples (doubling
    the rate adds about :math:`\log 4` to a tone's features), so resample to one rate per dataset
    when levels matter. Featurisation carries no gradient: a waveform that requires one is read
    detached.

    Args:
        sample_rate (int, optional): rate of waveforms given without one. (default: :obj:`16000`)
        n_mels (int, optional): mel bands, the feature size. (default: :obj:`64`)
        win_length (float, optional): window in seconds, at most 1 (400 samples at 16 kHz are
            ``0.025``). (default: :obj:`0.025`)
        hop_length (float, optional): hop in seconds, at most ``win_length``.
            (default: :obj:`0.010`)
        f_min (float, optional): lowest filter edge in Hz. (default: :obj:`0.0`)
        f_max (float, optional): highest filter edge in Hz. (default: ``sample_rate / 2``)
        window (int, optional): frames at most this far apart are joined. (default: :obj:`1`)
        self_loops (bool, optional): join each frame to itself. (default: :obj:`False`)
    """

    relation = "seq"

    def __init__(self, sample_rate: int = 16000, n_mels: int = 64, win_length: float = 0.025,
                 hop_length: float = 0.010, f_min: float = 0.0, f_max: float | None = None,
                 window: int = 1, self_loops: bool = False) -> None:
        self.f_max: float | None = None  # set once the rate is checked; _check_rate reads it
        self._analysis: dict[int, tuple[int, int, int, Tensor, list[tuple[slice, slice, Tensor]]]] = {}
        self.sample_rate = self._check_rate(sample_rate)
        check_int(n_mels, "AudioModality 'n_mels'")
        win_length = check_number(win_length, "AudioModality 'win_length'")
        hop_length = check_number(hop_length, "AudioModality 'hop_length'")
        f_min = check_number(f_min, "AudioModality 'f_min'")
        if f_max is not None:
            f_max = check_number(f_max, "AudioModality 'f_max'")
            if not math.isfinite(f_max):
                raise ValueError(f"AudioModality 'f_max' is the highest filter edge in Hz, at most sample_rate / 2; "
                                 f"got {f_max}")
        if not 0 < hop_length <= win_length:
            raise ValueError(
                f"AudioModality needs 0 < hop_length <= win_length (seconds), got hop_length={hop_length}, "
                f"win_length={win_length}")
        if win_length > _MAX_WIN_SECONDS:
            raise ValueError(_long_window_message(win_length, hop_length, self.sample_rate))
        f_max = self.sample_rate / 2.0 if f_max is None else f_max
        if not 0.0 <= f_min < f_max:
            raise ValueError(f"AudioModality needs 0 <= f_min < f_max, got f_min={f_min}, f_max={f_max}")
        check_int(window, "AudioModality 'window'")
        check_bool(self_loops, "AudioModality 'self_loops'")
        self.n_mels = n_mels
        self.win_length = win_length
        self.hop_length = hop_length
        self.f_min = f_min
        self.f_max = f_max
        self.window = window
        self.self_loops = self_loops
        self._check_rate(self.sample_rate)  # again, now that f_max is known
        self._analysis_for(self.sample_rate)  # here, so that a warning about its filter bank points at this call

    def _check_rate(self, sample_rate: Any) -> int:
        if type(sample_rate) is int and sample_rate in self._analysis:  # checked before its analysis was made
            return sample_rate
        if isinstance(sample_rate, float) and sample_rate.is_integer():
            sample_rate = int(sample_rate)
        elif isinstance(sample_rate, numbers.Integral) and not isinstance(sample_rate, bool):
            sample_rate = int(sample_rate)  # e.g. a numpy integer
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(
                f"Modality '{self.name}' received sample rate {sample_rate!r}; expected a positive integer "
                f"in Hz such as 16000")
        f_max = self.f_max
        if sample_rate < _MIN_SAMPLE_RATE or (f_max is not None and sample_rate < 2 * f_max):
            needed = max(_MIN_SAMPLE_RATE, math.ceil(2 * f_max)) if f_max is not None else _MIN_SAMPLE_RATE
            raise ValueError(
                f"Modality '{self.name}' does not support sample rate {sample_rate} Hz: it needs at least "
                f"{needed} Hz (1 kHz, and twice f_max={f_max} Hz); resample the waveform or lower f_max")
        return sample_rate

    def _analysis_for(self, sample_rate: int) -> tuple[int, int, int, Tensor, list[tuple[slice, slice, Tensor]]]:
        """``(win, hop, n_fft, window, filter bands)`` at ``sample_rate``, made once per rate (warning once
        about mel bands that no frequency bin falls in)."""
        if sample_rate not in self._analysis:
            win = max(2, round(self.win_length * sample_rate))
            hop = max(1, round(self.hop_length * sample_rate))
            n_fft = 1 << (win - 1).bit_length()
            filters = mel_filter_bank(n_fft // 2 + 1, self.n_mels, sample_rate, self.f_min, self.f_max)
            num_empty = int(filters.eq(0).all(dim=0).sum())
            if num_empty:
                warnings.warn(self._empty_bands_message(num_empty, sample_rate, n_fft), UserWarning, stacklevel=3)
            self._analysis[sample_rate] = (win, hop, n_fft, torch.hann_window(win, periodic=True),
                                           filter_bands(filters))
        return self._analysis[sample_rate]

    def _empty_bands_message(self, num_empty: int, sample_rate: int, n_fft: int) -> str:
        # The lowest band is the narrowest in Hz (mel is concave in Hz); a band wider than the bin spacing
        # holds a bin, so the bound below leaves none empty.
        bin_hz = sample_rate / n_fft
        mel_min, mel_max = (float(hz_to_mel(torch.tensor(f, dtype=torch.float64))) for f in (self.f_min, self.f_max))
        mel_step = (mel_max - mel_min) / (self.n_mels + 1)
        lowest_hz = float(mel_to_hz(torch.tensor(mel_min + 2 * mel_step, dtype=torch.float64))) - self.f_min
        one_bin_mel = float(hz_to_mel(torch.tensor(self.f_min + bin_hz, dtype=torch.float64))) - mel_min
        safe_n_mels = math.ceil(2 * (mel_max - mel_min) / one_bin_mel) - 2
        fewer = f"fewer mel bands (n_mels={safe_n_mels} or fewer leaves none empty) or " if safe_n_mels >= 1 else ""
        bands = "1 mel band" if num_empty == 1 else f"{num_empty} mel bands"
        return (f"AudioModality(n_mels={self.n_mels}) has {bands} with no frequency bin at {sample_rate} Hz: its "
                f"{n_fft}-point FFT has bins {bin_hz:.3g} Hz apart, wider than its lowest band ({lowest_hz:.3g} Hz), "
                f"so the features of those bands are the constant log(1e-6). Use {fewer}a longer win_length (a "
                f"finer FFT)")

    def featurize(self, raw: Any) -> NodeSet:
        return self._frame_nodes([raw])[0]

    def featurize_many(self, raws: Sequence[Any]) -> list[NodeSet]:
        """Clips -> their frame nodes, equal to :meth:`featurize` of each, with the frames of the clips
        at one sample rate windowed, transformed and projected together, a chunk of frames at a time
        (short clips laid end to end, :func:`end_to_end`; a clip of about 5 s or more goes by itself,
        :func:`frame_groups`). Each clip keeps its own frame count: its frames are cut from it alone,
        never from its neighbours' samples or padding."""
        if not featurizes_as(self, AudioModality):
            return super().featurize_many(raws)
        return self._frame_nodes(raws)

    def _frame_nodes(self, raws: Sequence[Any]) -> list[NodeSet]:
        return in_groups([self._clip(raw) for raw in raws], key=lambda clip: clip[1], featurize=self._same_rate_nodes)

    def _clip(self, raw: Any) -> tuple[Tensor, int]:
        """A raw input as a mono float32 waveform of at least one window, and its rate; its samples are
        checked for NaN/Inf with the rest of its batch (:meth:`_same_rate_nodes`)."""
        waveform, sample_rate = unpack_audio(raw, self.sample_rate, self.name)
        sample_rate = self._check_rate(sample_rate)
        waveform = to_mono(waveform, self.name, check_samples=False)
        win = self._analysis_for(sample_rate)[0]
        if waveform.numel() < win:
            waveform = torch.nn.functional.pad(waveform, (0, win - waveform.numel()))
        return waveform, sample_rate

    def _same_rate_nodes(self, clips: list[tuple[Tensor, int]]) -> list[NodeSet]:
        waveforms, sample_rate = [waveform for waveform, _ in clips], clips[0][1]
        win, hop, _, _, _ = analysis = self._analysis_for(sample_rate)
        counts = [(waveform.numel() - win) // hop + 1 for waveform in waveforms]
        # About a chunk's frames of clips at a time: their signal and spectra stay small (a batch of ten-second
        # clips laid end to end would be tens of MB, fresh pages from the kernel on every batch)
        clip_features = [x for group in frame_groups(counts, _FRAME_CHUNK, _ALONE_FRAMES)
                         for x in self._log_mel_of(waveforms[group], counts[group], analysis)]
        pos = sequence_positions(counts)
        start = pos.double() * hop / sample_rate
        time = torch.stack([start, start + win / sample_rate], dim=1).float()
        edges = chain_edges_many(counts, self.window, self.self_loops)
        return [NodeSet(x=x, edge_index=edge_index, pos=frame_pos, time=frame_time,
                        structure=("chain", num_frames, self.window, self.self_loops),
                        validated=True)  # finite features and times, edges of the chain
                for x, edge_index, frame_pos, frame_time, num_frames in zip(
                    clip_features, edges, pos.split(counts), time.split(counts), counts, strict=True)]

    def _log_mel_of(self, waveforms: list[Tensor], counts: list[int],
                    analysis: tuple[int, int, int, Tensor, list[tuple[slice, slice, Tensor]]]) -> list[Tensor]:
        """The log-mel frames of each clip (``counts`` of them), transformed together: views of one tensor."""
        _, hop, n_fft, window, bands = analysis
        signal, spans = end_to_end(waveforms, hop)
        # One reduction checks every clip's samples (a finite sum has no NaN or inf); only a NaN, an inf or a
        # sum beyond float32's range looks at each clip.
        if not math.isfinite(float(signal.sum())):
            for waveform in waveforms:
                check_finite(waveform, self.name, "samples")
        features = log_mel(signal, hop, window, n_fft, bands, self.n_mels)
        # The frames of clip i are rows [sum(spans[:i]), ... + counts[i]) of the signal's; the rows between
        # two clips straddle them and are left out.
        sizes = [size for count, span in zip(counts, spans, strict=False) for size in (count, span - count)]
        clip_features = features.split([*sizes, counts[-1]])[::2]
        # Finite log-mel features lie within [log 1e-6, log of float32's max], so their sum overflows only
        # through an inf or NaN: one reduction checks them all (and the rows between clips, which hold
        # samples past a clip's last whole frame: only the clips' own frames decide).
        if not math.isfinite(float(features.sum())):  # the power of samples beyond ~1e15 overflows float32
            for waveform, x in zip(waveforms, clip_features, strict=True):
                if not bool(torch.isfinite(x).all()):
                    raise ValueError(
                        f"Modality '{self.name}' received samples as loud as {float(waveform.abs().max()):.3g}, "
                        f"whose power overflows float32; scale the waveform to [-1, 1] (or pass int16 PCM)")
        return clip_features

    def conforms_to_empty(self) -> bool:
        return type(self) is AudioModality

    def empty(self) -> NodeSet:
        return NodeSet.empty(feature_shape=(self.n_mels,), pos_shape=(), timed=True)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(sample_rate={self.sample_rate}, n_mels={self.n_mels}, "
                f"win_length={self.win_length}, hop_length={self.hop_length}, window={self.window})")


def _long_window_message(win_length: float, hop_length: float, sample_rate: int) -> str:
    message = (f"AudioModality received win_length={win_length}, hop_length={hop_length}, a window of "
               f"{win_length} seconds; win_length and hop_length are in seconds (e.g. 0.025 and 0.010) and "
               f"win_length must be at most {_MAX_WIN_SECONDS:g} s")
    if float(win_length).is_integer():  # a window given in samples or milliseconds
        whole = [("win_length", win_length)] + ([("hop_length", hop_length)] if float(hop_length).is_integer() else [])
        in_samples = ", ".join(f"{name}={value / sample_rate:g}" for name, value in whole)
        in_milliseconds = ", ".join(f"{name}={value / 1000:g}" for name, value in whole)
        message += (f". If {'they are' if len(whole) > 1 else 'it is'} in samples at sample_rate={sample_rate} Hz, "
                    f"pass {in_samples}; if in milliseconds, {in_milliseconds}")
    return message


def frame_groups(counts: Sequence[int], frames: int, alone: int) -> list[slice]:
    """Consecutive clips of ``counts`` frames, as slices: clips of fewer than ``alone`` frames together,
    at most ``frames`` frames in a group, and each longer clip by itself."""
    groups, start, total, single = [], 0, 0, False
    for index, count in enumerate(counts):
        if total and (single or count >= alone or total + count > frames):
            groups.append(slice(start, index))
            start, total = index, 0
        single = count >= alone
        total += count
    return [*groups, slice(start, len(counts))] if counts else groups


def end_to_end(waveforms: Sequence[Tensor], hop: int) -> tuple[Tensor, list[int]]:
    """The clips ``waveforms`` laid end to end in one signal, each but the last zero-padded to a whole
    number of hops, so that every frame of every clip is a frame of the signal; and the hops each clip
    but the last takes in it. Frames between two clips' own straddle them."""
    spans = [-(-waveform.numel() // hop) for waveform in waveforms[:-1]]
    if not spans:
        return waveforms[0], spans
    zeros, padding = torch.zeros(hop), {}  # one view per padding length: clips of a batch share a few
    pieces = []
    for waveform, span in zip(waveforms, spans, strict=False):
        pieces.append(waveform)
        missing = span * hop - waveform.numel()
        if missing:
            if missing not in padding:
                padding[missing] = zeros[:missing]
            pieces.append(padding[missing])
    pieces.append(waveforms[-1])
    return torch.cat(pieces), spans


def log_mel(signal: Tensor, hop: int, window: Tensor, n_fft: int, bands: Sequence[tuple[slice, slice, Tensor]],
            n_mels: int) -> Tensor:
    r""":math:`\log(|\mathrm{FFT}_{n_{fft}}(\text{window} \cdot \text{frame})|^2 M + 10^{-6})` of every
    whole frame (``window.numel()`` samples, ``hop`` apart) of ``signal`` (at least one window long), for
    the filter bank :math:`M` in ``bands`` (:func:`filter_bands`): :math:`[F, n_{mels}]`.

    The frames are a strided view of the signal, windowed, transformed and projected
    :data:`_CHUNK_BYTES` of frames at a time, in buffers each thread keeps from call to call
    (:func:`_frame_buffers`), so the windowed frames and spectra (several times the size of the
    signal) never exist whole. Many clips go through in one call laid end to end (:func:`end_to_end`).
    """
    frames = signal.unfold(0, window.numel(), hop)
    rows = frames.size(0)
    features = torch.empty(rows, n_mels)
    per_chunk = max(1, _CHUNK_BYTES // (4 * n_fft))
    chunk, power = _frame_buffers(min(rows, per_chunk), window.numel(), n_fft)
    for start in range(0, rows, per_chunk):
        end = min(start + per_chunk, rows)
        torch.mul(frames[start:end], window, out=chunk[:end - start, :window.numel()])
        # |X|^2 = re^2 + im^2 (abs() would take a square root), squared in place as contiguous pairs
        parts = torch.view_as_real(torch.fft.rfft(chunk[:end - start])).square_()
        chunk_power = torch.add(parts[..., 0], parts[..., 1], out=power[:end - start])
        for bins, mels, block in bands:
            torch.mm(chunk_power[:, bins], block, out=features[start:end, mels])
    # numpy's float32 log is twice as fast as torch's on CPU (and as accurate, within an ulp)
    values = features.numpy()
    np.log(np.add(values, 1e-6, out=values), out=values)
    return features


class _ThreadBuffers(threading.local):
    def __init__(self) -> None:
        self.frames: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}


_BUFFERS = _ThreadBuffers()


def _frame_buffers(rows: int, win: int, n_fft: int) -> tuple[Tensor, Tensor]:
    """This thread's buffers for :func:`log_mel`: ``rows`` frames of ``win`` samples zero-padded to
    ``n_fft``, and their power spectra (3 MB at most: a chunk is :data:`_CHUNK_BYTES`), kept from call
    to call and grown when a call needs more rows. Made afresh for every batch, their megabytes sent
    glibc to the kernel for new pages every time, which doubled the batched featurisation of short clips
    with glibc's default settings."""
    buffers = _BUFFERS.frames.get((win, n_fft))
    if buffers is None or buffers[0].size(0) < rows:
        with torch.inference_mode(False):  # buffers made in inference mode could not be written outside it
            chunk = torch.zeros(rows, n_fft)  # only [:, :win] is ever written: the padding stays 0
            _BUFFERS.frames[(win, n_fft)] = buffers = (chunk, torch.empty(rows, n_fft // 2 + 1))
    return buffers


def unpack_audio(raw: Any, sample_rate: int, name: str) -> tuple[Any, Any]:
    """``(waveform, rate)`` of a raw audio input (a bare waveform is at ``sample_rate``); errors name ``name``."""
    # The common cases first: isinstance of the Mapping ABC costs more
    if isinstance(raw, Tensor):
        return raw, sample_rate
    if isinstance(raw, tuple):
        if len(raw) != 2:
            raise ValueError(
                f"Modality '{name}' received a tuple of {len(raw)} items; expected (waveform, sample_rate)")
        return raw
    if isinstance(raw, Mapping):
        if set(raw) == {"waveform", "sample_rate"}:
            return raw["waveform"], raw["sample_rate"]
        if {"array", "sampling_rate"} <= set(raw) <= {"array", "sampling_rate", "path"}:
            return raw["array"], raw["sampling_rate"]  # a Hugging Face datasets Audio value
        raise ValueError(
            f"Modality '{name}' received a mapping with keys {sorted(raw)}; expected "
            f"'waveform' and 'sample_rate' (or a datasets Audio value: 'array', 'sampling_rate', 'path')")
    return raw, sample_rate


def to_mono(waveform: Any, name: str, check_samples: bool = True) -> Tensor:
    """A waveform ``[T]`` or ``[C, T]`` (floating or int16 PCM) as a float mono ``[T]``; errors name ``name``.
    ``check_samples=False`` leaves checking float32 samples for NaN/Inf to the caller (a batch at once);
    wider floats are checked either way (before the cast to float32 turns large ones into inf)."""
    waveform = as_tensor(waveform, f"Modality '{name}'", "a waveform tensor or array [T] or [C, T]")
    if waveform.requires_grad:  # featurisation carries no gradient
        waveform = waveform.detach()
    if waveform.dtype == torch.int16:
        waveform = waveform.float() / 32768.0
    elif waveform.is_floating_point():
        if check_samples or waveform.dtype != torch.float32:
            waveform = to_float32(waveform, name, "samples")
    else:
        raise TypeError(
            f"Modality '{name}' received samples of dtype {waveform.dtype}; expected a floating "
            f"dtype or int16 PCM")
    if waveform.dim() == 2:
        if waveform.size(0) > waveform.size(1) > 0:  # [C, 0] is reported as empty below
            raise ValueError(
                f"Modality '{name}' received a waveform of shape {tuple(waveform.shape)} with more "
                f"channels than samples (channels last? transpose it to [C, T])")
        waveform = waveform.mean(dim=0)
        if check_samples:
            check_finite(waveform, name, "samples")  # the mean of finite channels may overflow float32
    elif waveform.dim() != 1:
        raise ValueError(
            f"Modality '{name}' received a {waveform.dim()}-D waveform of shape {tuple(waveform.shape)}; "
            f"expected [T] or [C, T]")
    if waveform.numel() == 0:
        raise ValueError(f"Modality '{name}' received an empty waveform; leave the '{name}' key out of a "
                         "sample that has no audio")
    return waveform
