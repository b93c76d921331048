"""The duration-keeping pitch shifter, measured on a synthetic voiced signal."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sentiric_tts.audio.pitch import PitchShifter, shift_pitch
from tests.support.audio import median_f0

SR = 22050


def voiced(seconds: float = 2.0, f0: float = 150.0, sr: int = SR) -> np.ndarray:
    """A voice-like signal: 9 harmonics of a slightly wobbling fundamental (vibrato keeps it honest)."""
    t = np.arange(int(seconds * sr)) / sr
    freq = f0 * (1 + 0.03 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(freq) / sr
    return (0.3 * sum(np.sin(k * phase) / k for k in range(1, 10))).astype(np.float32)


def semitones_between(f_from: float, f_to: float) -> float:
    return 12 * math.log2(f_to / f_from)


def stream(shifter: PitchShifter, x: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    outs, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 4000))
        outs.append(shifter.process(x[i : i + n]))
        i += n
    outs.append(shifter.flush())
    return np.concatenate(outs)


@pytest.mark.parametrize("semitones", [4.0, -4.0])
def test_shift_moves_f0_and_keeps_length(semitones: float) -> None:
    x = voiced()
    y = shift_pitch(x, SR, semitones)
    assert y.dtype == np.float32
    assert len(y) == len(x)
    assert np.isfinite(y).all()
    assert np.abs(y).max() < 1.5 * np.abs(x).max()  # no gain blow-up
    measured = semitones_between(median_f0(x, SR), median_f0(y, SR))
    assert abs(measured - semitones) <= 1.0


@pytest.mark.parametrize("semitones", [4.0, -4.0, 1.5])
def test_streaming_in_random_chunks_matches_whole(semitones: float) -> None:
    x = voiced(1.0)
    whole = shift_pitch(x, SR, semitones)
    streamed = stream(PitchShifter(SR, semitones), x, seed=int(abs(semitones) * 10))
    assert len(streamed) == len(x) == len(whole)
    assert np.isfinite(streamed).all()
    # Chunking must not change the result (no boundary artefacts).
    np.testing.assert_allclose(streamed, whole, atol=1e-4)


def test_output_never_runs_ahead_of_input() -> None:
    shifter = PitchShifter(SR, 3.0)
    x = voiced(0.5)
    received = given = 0
    for start in range(0, len(x), 441):
        chunk = x[start : start + 441]
        given += len(chunk)
        received += len(shifter.process(chunk))
        assert received <= given
    assert received + len(shifter.flush()) == given


@pytest.mark.parametrize("semitones", [4.0, -4.0])
def test_timing_is_kept(semitones: float) -> None:
    """A burst stays where it was: the shifter compensates its own latency."""
    x = np.zeros(SR, dtype=np.float32)
    x[8000:12000] = voiced(4000 / SR)
    y = shift_pitch(x, SR, semitones)

    def centre(signal: np.ndarray) -> float:
        energy = signal.astype(np.float64) ** 2
        return float((energy * np.arange(len(signal))).sum() / energy.sum())

    # WSOLA picks each frame within +-7.5 ms of its nominal place, hence the tolerance.
    assert abs(centre(y) - centre(x)) < 0.015 * SR


def test_zero_semitones_is_a_pass_through() -> None:
    x = voiced(0.3)
    shifter = PitchShifter(SR, 0.0)
    out = np.concatenate([shifter.process(x[:1000]), shifter.process(x[1000:]), shifter.flush()])
    np.testing.assert_array_equal(out, x)


def test_empty_and_tiny_inputs() -> None:
    assert len(shift_pitch(np.zeros(0, dtype=np.float32), SR, 2.0)) == 0
    assert len(shift_pitch(np.ones(3, dtype=np.float32) * 0.1, SR, 2.0)) == 3
    shifter = PitchShifter(16000, -2.0)
    assert len(shifter.process(np.zeros(0, dtype=np.float32))) == 0
    assert len(shifter.flush()) == 0


def test_other_rates_and_float64_input() -> None:
    x = voiced(0.5, sr=16000).astype(np.float64)
    y = shift_pitch(x, 16000, 2.0)
    assert y.dtype == np.float32 and len(y) == len(x)


@pytest.mark.parametrize("semitones", [30.0, -25.0, math.nan, math.inf])
def test_absurd_shifts_are_refused(semitones: float) -> None:
    with pytest.raises(ValueError, match="semitones"):
        PitchShifter(SR, semitones)
