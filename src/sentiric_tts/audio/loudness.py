"""Loudness per EBU R128 / ITU-R BS.1770-4, whole-signal normalisation and a streaming normaliser.

Own numpy implementation (no scipy at runtime): K-weighting uses the rate-independent biquad design
that pyloudnorm also uses (high shelf +4 dB at 1500 Hz, Q 1/sqrt(2); high pass 38 Hz, Q 0.5),
applied as an FFT convolution with the filters' impulse response, truncated where it has decayed
below 1e-10 (far under float32 resolution, so the result matches recursive filtering). Gating:
400 ms blocks, 75 % overlap, absolute gate -70 LUFS, relative gate -10 LU.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from sentiric_tts.audio.limiter import TruePeakLimiter, true_peak_dbtp

__all__ = [
    "MAX_GAIN_DB",
    "StreamLoudness",
    "TruePeakLimiter",
    "integrated_loudness",
    "normalize_whole",
    "true_peak_dbtp",
]

MAX_GAIN_DB = 20.0  # near-silence must not be blown up to the target (and noise with it)
BLOCK_S = 0.4
STEP_S = 0.1
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
_IR_FLOOR = 1e-10
_CORRECTION_ROUNDS = 3
_CORRECTION_TOLERANCE_LU = 0.2
_OLA_BLOCK = 1 << 16


def _biquad(kind: str, gain_db: float, q: float, fc: float, rate: int) -> tuple[list[float], list[float]]:
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * fc / rate
    alpha = math.sin(w0) / (2.0 * q)
    cos = math.cos(w0)
    if kind == "high_shelf":
        sq = 2.0 * math.sqrt(a) * alpha
        b = [
            a * ((a + 1) + (a - 1) * cos + sq),
            -2 * a * ((a - 1) + (a + 1) * cos),
            a * ((a + 1) + (a - 1) * cos - sq),
        ]
        den = [(a + 1) - (a - 1) * cos + sq, 2 * ((a - 1) - (a + 1) * cos), (a + 1) - (a - 1) * cos - sq]
    else:  # high pass
        b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]
        den = [1 + alpha, -2 * cos, 1 - alpha]
    return [v / den[0] for v in b], [1.0, den[1] / den[0], den[2] / den[0]]


@cache
def _k_weighting_ir(rate: int) -> np.ndarray:
    """Impulse response of the K-weighting cascade, cut once it has decayed below 1e-10."""
    stages = [
        _biquad("high_shelf", 4.0, 1 / math.sqrt(2), 1500.0, rate),
        _biquad("high_pass", 0.0, 0.5, 38.0, rate),
    ]
    length = max(256, int(rate * 0.5))  # the 38 Hz high pass rings longest: ~0.15 s at any rate
    signal = [0.0] * length
    signal[0] = 1.0
    for b, a in stages:
        out = [0.0] * length
        x1 = x2 = y1 = y2 = 0.0
        for i, x0 in enumerate(signal):
            y0 = b[0] * x0 + b[1] * x1 + b[2] * x2 - a[1] * y1 - a[2] * y2
            out[i] = y0
            x2, x1, y2, y1 = x1, x0, y1, y0
        signal = out
    ir = np.asarray(signal)
    above = np.nonzero(np.abs(ir) > _IR_FLOOR)[0]
    return ir[: above[-1] + 1]


def k_weight(audio: np.ndarray, rate: int) -> np.ndarray:
    """K-weighted signal, same length as the input (zero initial state, like lfilter)."""
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    ir = _k_weighting_ir(rate)
    n_fft = 1 << math.ceil(math.log2(_OLA_BLOCK + ir.size - 1))
    spectrum = np.fft.rfft(ir, n_fft)
    out = np.zeros(x.size + ir.size - 1)
    for start in range(0, x.size, _OLA_BLOCK):  # overlap-add keeps memory flat for long inputs
        block = x[start : start + _OLA_BLOCK]
        conv = np.fft.irfft(np.fft.rfft(block, n_fft) * spectrum, n_fft)[: block.size + ir.size - 1]
        out[start : start + conv.size] += conv
    return out[: x.size]


def _block_powers(weighted: np.ndarray, rate: int) -> np.ndarray:
    """Mean square of every gating block; a signal shorter than a block is one block."""
    block = round(BLOCK_S * rate)
    step = round(STEP_S * rate)
    if weighted.size < block:
        return np.array([np.mean(weighted**2)]) if weighted.size else np.zeros(0)
    sums = np.concatenate([[0.0], np.cumsum(weighted**2)])
    starts = np.arange(0, weighted.size - block + 1, step)
    return (sums[starts + block] - sums[starts]) / block


def _power_to_lufs(power: np.ndarray | float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return -0.691 + 10.0 * np.log10(power)


def integrated_loudness(audio: np.ndarray, rate: int) -> float:
    """Gated integrated loudness (LUFS) of a mono signal; -inf when nothing passes the gates."""
    powers = _block_powers(k_weight(audio, rate), rate)
    gated = powers[_power_to_lufs(powers) > ABSOLUTE_GATE_LUFS]
    if not gated.size:
        return -math.inf
    relative_gate = float(_power_to_lufs(np.mean(gated))) + RELATIVE_GATE_LU
    gated = gated[_power_to_lufs(gated) > relative_gate]
    return float(_power_to_lufs(np.mean(gated)))


def normalization_gain_db(measured_lufs: float, target_lufs: float) -> float:
    """Gain towards the target, capped at +MAX_GAIN_DB; 0 dB when there is nothing to measure."""
    if not math.isfinite(measured_lufs):
        return 0.0
    return min(target_lufs - measured_lufs, MAX_GAIN_DB)


def _gain_and_limit(audio: np.ndarray, rate: int, gain_db: float, ceiling_dbtp: float) -> np.ndarray:
    limiter = TruePeakLimiter(rate, ceiling_dbtp)
    gained = audio * np.float32(10.0 ** (gain_db / 20.0))
    # In blocks, so the limiter's idle path skips the quiet stretches (same output either way).
    block = max(1, rate // 4)
    pieces = [limiter.process(gained[start : start + block]) for start in range(0, gained.size, block)]
    return np.concatenate([*pieces, limiter.flush()])


def normalize_whole(
    audio: np.ndarray,
    rate: int,
    target_lufs: float,
    true_peak_dbtp: float,
    measured_lufs: float | None = None,
) -> np.ndarray:
    """Gain to `target_lufs` measured over the whole signal, then true-peak limited (same length).

    Limiting a signal with a high crest factor takes loudness away; we re-measure the limited
    result and correct the gain (a couple of rounds converge to well under 0.5 LU), still within
    the +MAX_GAIN_DB cap. `measured_lufs`: the signal's loudness when the caller measured it.
    """
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    measured = integrated_loudness(x, rate) if measured_lufs is None else measured_lufs
    gain_db = normalization_gain_db(measured, target_lufs)
    out = _gain_and_limit(x, rate, gain_db, true_peak_dbtp)
    if not math.isfinite(measured):
        return out
    for _ in range(_CORRECTION_ROUNDS):
        miss = target_lufs - integrated_loudness(out, rate)
        if abs(miss) < _CORRECTION_TOLERANCE_LU or gain_db >= MAX_GAIN_DB:
            break
        gain_db = min(gain_db + miss, MAX_GAIN_DB)
        out = _gain_and_limit(x, rate, gain_db, true_peak_dbtp)
    return out


class StreamLoudness:
    """Streaming normaliser: gain from the opening audio, held, then a true-peak limiter.

    The first audio is buffered until `min_seconds` of it can be measured, or the caller says the
    first segment (sentence) ended (`segment_done()`), whichever comes first; if it is still
    unmeasurable (silence) we keep waiting up to `max_wait_seconds` and then use 0 dB. From then
    on the gain is fixed, so loudness does not pump within a response. Output length equals input
    length exactly once `flush()` has been called.
    """

    def __init__(
        self,
        rate: int,
        target_lufs: float = -16.0,
        true_peak_dbtp: float = -1.0,
        extra_gain_db: float = 0.0,
        *,
        min_seconds: float = 1.0,
        max_wait_seconds: float = 3.0,
        known_lufs: float | None = None,
    ) -> None:
        """`known_lufs`: the voice's loudness measured before (e.g. over earlier renders); when
        given, the gain is decided at once and nothing is buffered."""
        self.rate = rate
        self.target_lufs = target_lufs
        self.extra_gain_db = extra_gain_db
        self._min_samples = round(min_seconds * rate)
        self._max_wait = round(max_wait_seconds * rate)
        self._limiter = TruePeakLimiter(rate, true_peak_dbtp)
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        self.gain_db: float | None = None  # set once decided (normalisation + extra gain)
        self.measured_lufs: float | None = None
        if known_lufs is not None and math.isfinite(known_lufs):
            self.measured_lufs = known_lufs
            self.gain_db = normalization_gain_db(known_lufs, target_lufs) + extra_gain_db

    @property
    def latency(self) -> int:
        """Samples held back by the limiter once the gain is decided."""
        return self._limiter.latency

    def _decide(self, *, force: bool) -> np.ndarray:
        audio = np.concatenate(self._buffer) if self._buffer else np.zeros(0, np.float32)
        measured = integrated_loudness(audio, self.rate) if audio.size else -math.inf
        if not math.isfinite(measured) and not force:
            return np.zeros(0, np.float32)
        self.measured_lufs = measured
        self.gain_db = normalization_gain_db(measured, self.target_lufs) + self.extra_gain_db
        self._buffer.clear()
        self._buffered = 0
        return self._apply(audio)

    def _apply(self, audio: np.ndarray) -> np.ndarray:
        assert self.gain_db is not None
        return self._limiter.process(audio * np.float32(10.0 ** (self.gain_db / 20.0)))

    def process(self, chunk: np.ndarray) -> np.ndarray:
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        if self.gain_db is not None:
            return self._apply(chunk)
        self._buffer.append(chunk)
        self._buffered += chunk.size
        if self._buffered >= self._min_samples:
            return self._decide(force=self._buffered >= self._max_wait)
        return np.zeros(0, np.float32)

    def segment_done(self) -> np.ndarray:
        """The caller finished a segment: decide now if there is something to measure."""
        if self.gain_db is not None or not self._buffered:
            return np.zeros(0, np.float32)
        return self._decide(force=self._buffered >= self._max_wait)

    def flush(self) -> np.ndarray:
        head = self._decide(force=True) if self.gain_db is None else np.zeros(0, np.float32)
        return np.concatenate([head, self._limiter.flush()])
