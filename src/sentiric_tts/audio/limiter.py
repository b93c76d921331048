"""True peak (ITU-R BS.1770-4 annex 2) and a streaming look-ahead true-peak limiter.

True peak: the signal is oversampled 4x with a 48-tap polyphase low-pass (12 taps per phase, the
annex's structure; our own Kaiser-windowed sinc) and the largest magnitude of the oversampled
signal (and of the samples themselves) is the peak.

Limiter, per sample n, all causal with numpy-vectorised stages so chunk boundaries don't matter:

    q      = peak of the 4x oversampled signal around n (and |x|)
    qm     = sliding max of q over the interpolation support (+-6 samples): the gain is flat
             wherever a filter would reconstruct the peak, so limited samples cannot rebuild it
    g_req  = min(1, ceiling / qm)
    M      = sliding min of g_req over attack + hold  (hold = slow release, no pumping per cycle)
    gain   = M smoothed by two cascaded boxes (an S-shaped attack and release ramp)

Because every smoothed gain value is an average of minima whose windows all contain the sample it
is applied to, the gain at a sample is never above what that sample needs. The signal is delayed
by the look-ahead (`latency` samples, ~5 ms + 12 samples); `flush()` returns the last `latency`
samples, so total output length equals total input length exactly.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

OVERSAMPLE = 4
TAPS_PER_PHASE = 12
ATTACK_MS = 5.0  # the look-ahead: gain reaches its target before the peak arrives
HOLD_MS = 20.0  # keep the reduced gain this long after a peak before releasing
_KAISER_BETA = 6.0
# Aim a hair under the ceiling so float32 rounding of gain * sample cannot land on the wrong side.
_CEILING_MARGIN_DB = 0.01


@cache
def _phases() -> np.ndarray:
    """(4, 12) polyphase filter; each phase sums to 1 so DC passes unchanged."""
    length = OVERSAMPLE * TAPS_PER_PHASE
    k = np.arange(length) - (length - 1) / 2
    h = np.sinc(k / OVERSAMPLE) * np.kaiser(length, _KAISER_BETA)
    phases = np.stack([h[r::OVERSAMPLE] for r in range(OVERSAMPLE)])
    return (phases / phases.sum(axis=1, keepdims=True)).astype(np.float32)


@cache
def _interpolation_bound() -> float:
    """Largest factor by which the oversampled signal can exceed its sample peak."""
    return float(max(np.abs(_phases()).sum(axis=1).max(), 1.0))


# Oversampled values of q[n] lie between samples n - _FIR_DELAY and n - _FIR_DELAY + 1.
_FIR_DELAY = math.ceil((OVERSAMPLE * TAPS_PER_PHASE - 1) / (2 * OVERSAMPLE))


def _oversampled_peak(history_and_chunk: np.ndarray) -> np.ndarray:
    """Valid-mode per-sample peak: one value per sample after the first TAPS_PER_PHASE - 1."""
    x = history_and_chunk
    peak = np.abs(x[TAPS_PER_PHASE - 1 - _FIR_DELAY : len(x) - _FIR_DELAY])
    for phase in _phases():
        np.maximum(peak, np.abs(np.convolve(x, phase, mode="valid")), out=peak)
    return peak


def true_peak(audio: np.ndarray) -> float:
    """Linear true peak (1.0 = full scale) of a whole signal."""
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if not x.size:
        return 0.0
    padded = np.concatenate(
        [np.zeros(TAPS_PER_PHASE - 1, np.float32), x, np.zeros(TAPS_PER_PHASE, np.float32)]
    )
    return float(max(np.abs(x).max(), _oversampled_peak(padded).max()))


def true_peak_dbtp(audio: np.ndarray, rate: int) -> float:
    """True peak in dBTP (4x oversampled, BS.1770-4 annex 2); -inf for digital silence.

    `rate` is accepted for the API's symmetry: 4x oversampling is what the annex specifies at
    48 kHz and we use it at every rate.
    """
    del rate
    peak = true_peak(audio)
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def _sliding(x: np.ndarray, width: int, reduce: np.ufunc, pad: float) -> np.ndarray:
    """Valid-mode sliding max/min in O(n) (van Herk / Gil-Werman): out[i] = f(x[i:i+width])."""
    if width == 1:
        return x.copy()
    n = x.size
    padded = np.concatenate([x, np.full((-n) % width, pad, dtype=x.dtype)]).reshape(-1, width)
    prefix = reduce.accumulate(padded, axis=1).reshape(-1)
    suffix = reduce.accumulate(padded[:, ::-1], axis=1)[:, ::-1].reshape(-1)
    count = n - width + 1
    return reduce(suffix[:count], prefix[width - 1 : width - 1 + count])


def _box(x: np.ndarray, width: int) -> np.ndarray:
    """Valid-mode moving average."""
    sums = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
    return ((sums[width:] - sums[:-width]) / width).astype(np.float32)


class TruePeakLimiter:
    """Streaming look-ahead limiter keeping the true peak at or below `ceiling_dbtp`."""

    def __init__(self, rate: int, ceiling_dbtp: float = -1.0) -> None:
        self.rate = rate
        self.ceiling = float(10.0 ** ((ceiling_dbtp - _CEILING_MARGIN_DB) / 20.0))
        self._box_len = max(1, round(rate * ATTACK_MS / 2000.0))  # two boxes make the attack
        attack = 2 * self._box_len - 1
        self._peak_width = 2 * _FIR_DELAY + 2
        self._min_width = attack + max(1, round(rate * HOLD_MS / 1000.0))
        # Sample m gets the gain computed at index m + latency (see module docstring).
        self.latency = 2 * _FIR_DELAY + attack - 1
        self._x_hist = np.zeros(TAPS_PER_PHASE - 1, np.float32)
        self._q_hist = np.zeros(self._peak_width - 1, np.float32)
        self._g_hist = np.ones(self._min_width - 1, np.float32)
        self._m_hist = np.ones(self._box_len - 1, np.float32)
        self._b_hist = np.ones(self._box_len - 1, np.float32)
        self._pending = np.zeros(0, np.float32)  # input samples waiting for their gain
        self._skip = self.latency  # the first gains belong to samples before the stream began

    @staticmethod
    def _stage(history: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        joined = np.concatenate([history, new])
        return joined, joined[len(joined) - len(history) :] if len(history) else history

    def _idle_gains(self, chunk: np.ndarray) -> np.ndarray | None:
        """Unit gains when no sample of this chunk can reach the ceiling and no earlier peak's
        gain reduction is still in effect; None when the full computation is needed.

        Speech mostly sits well below the ceiling, so this skips the oversampling filters for
        most chunks. The bound is exact for our detector: an interpolated value is at most the
        sample peak times the largest sum of absolute taps of any phase.
        """
        if self._g_hist.min() < 1.0 or self._m_hist.min() < 1.0 or self._b_hist.min() < 1.0:
            return None
        x = np.concatenate([self._x_hist, chunk])
        if float(np.abs(x).max()) * _interpolation_bound() >= self.ceiling:
            return None
        tail = x[max(0, x.size - (self._q_hist.size + TAPS_PER_PHASE - 1)) :]
        q = _oversampled_peak(tail) if tail.size >= TAPS_PER_PHASE else np.zeros(0, np.float32)
        self._q_hist = (
            np.concatenate([self._q_hist, q])[-self._q_hist.size :] if self._q_hist.size else self._q_hist
        )
        self._x_hist = x[x.size - self._x_hist.size :] if self._x_hist.size else self._x_hist
        return np.ones(chunk.size, np.float32)

    def _gains(self, chunk: np.ndarray) -> np.ndarray:
        idle = self._idle_gains(chunk)
        if idle is not None:
            return idle
        x, self._x_hist = self._stage(self._x_hist, chunk)
        q, self._q_hist = self._stage(self._q_hist, _oversampled_peak(x))
        qm = _sliding(q, self._peak_width, np.maximum, -np.inf)
        g_req = np.minimum(1.0, self.ceiling / np.maximum(qm, 1e-12)).astype(np.float32)
        g, self._g_hist = self._stage(self._g_hist, g_req)
        held = _sliding(g, self._min_width, np.minimum, np.inf)
        m, self._m_hist = self._stage(self._m_hist, held)
        once = _box(m, self._box_len)
        b, self._b_hist = self._stage(self._b_hist, once)
        return _box(b, self._box_len)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        if not chunk.size:
            return np.zeros(0, np.float32)
        gains = self._gains(chunk)
        skipped = min(self._skip, gains.size)
        self._skip -= skipped
        gains = gains[skipped:]
        self._pending = np.concatenate([self._pending, chunk])
        out = self._pending[: gains.size] * gains
        self._pending = self._pending[gains.size :]
        return out

    def flush(self) -> np.ndarray:
        """The delayed tail; afterwards the limiter has returned exactly what it was given."""
        if not self._pending.size:
            return np.zeros(0, np.float32)
        return self.process(np.zeros(self.latency, np.float32))[: self._pending.size + self.latency]
