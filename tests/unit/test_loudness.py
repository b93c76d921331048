"""Loudness (BS.1770-4) against pyloudnorm, true peak, the limiter and the stream normaliser."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest

from sentiric_tts.audio.loudness import (
    StreamLoudness,
    TruePeakLimiter,
    integrated_loudness,
    normalize_whole,
    true_peak_dbtp,
)


def _speech_like(rate: int, seconds: float, seed: int = 0, level: float = 0.3) -> np.ndarray:
    """Voiced bursts (syllables), pauses between 'sentences' and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(rate * seconds)) / rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase + rng.uniform(0, 6)) / k for k in range(1, 8))
    syllables = np.clip(np.sin(2 * np.pi * 3.5 * t), 0, None) ** 2
    sentences = (np.sin(2 * np.pi * 0.25 * t) > -0.7).astype(float)
    audio = level * voiced * syllables * sentences + 0.002 * rng.standard_normal(t.size)
    return audio.astype(np.float32)


def _chunks(audio: np.ndarray, rng: np.random.Generator, largest: int) -> list[np.ndarray]:
    out, pos = [], 0
    while pos < audio.size:
        size = int(rng.integers(1, largest))
        out.append(audio[pos : pos + size])
        pos += size
    return out


@pytest.mark.parametrize("rate", [8000, 22050, 48000])
def test_integrated_loudness_matches_pyloudnorm(rate: int) -> None:
    audio = _speech_like(rate, 6.0, seed=rate)
    reference = pyloudnorm.Meter(rate).integrated_loudness(audio.astype(np.float64))
    assert integrated_loudness(audio, rate) == pytest.approx(reference, abs=0.01)


def test_silence_is_minus_infinity_and_short_audio_is_measurable() -> None:
    assert integrated_loudness(np.zeros(16000, np.float32), 16000) == -np.inf
    assert np.isfinite(integrated_loudness(_speech_like(16000, 0.3), 16000))


def test_true_peak_sees_intersample_peaks() -> None:
    rate = 48000
    n = np.arange(rate)
    # A sine at fs/4 sampled 45 degrees off its crest: samples reach 0.707, the wave reaches 1.
    audio = np.sin(2 * np.pi * n / 4 + np.pi / 4).astype(np.float32)
    assert 20 * np.log10(np.abs(audio).max()) == pytest.approx(-3.01, abs=0.05)
    assert true_peak_dbtp(audio, rate) == pytest.approx(0.0, abs=0.3)
    assert true_peak_dbtp(np.zeros(10, np.float32), rate) == -np.inf


@pytest.mark.parametrize("rate", [16000, 48000])
@pytest.mark.parametrize("target", [-16.0, -23.0])
def test_normalize_whole_hits_target_under_the_ceiling(rate: int, target: float) -> None:
    audio = _speech_like(rate, 8.0, seed=1, level=0.05)
    audio[rate : rate + 50] = 0.9  # a spike the gain would push far over full scale
    out = normalize_whole(audio, rate, target, -1.0)
    assert out.size == audio.size
    assert pyloudnorm.Meter(rate).integrated_loudness(out.astype(np.float64)) == pytest.approx(
        target, abs=1.0
    )
    assert true_peak_dbtp(out, rate) <= -1.0


def test_normalize_whole_caps_the_gain_for_near_silence() -> None:
    rate = 16000
    hiss = (1e-5 * np.random.default_rng(0).standard_normal(rate * 2)).astype(np.float32)
    out = normalize_whole(hiss, rate, -16.0, -1.0)
    assert np.abs(out).max() <= np.abs(hiss).max() * 10.0 + 1e-9  # +20 dB at most


@pytest.mark.parametrize("rate", [8000, 24000, 48000])
def test_limiter_is_length_exact_and_chunking_invariant(rate: int) -> None:
    rng = np.random.default_rng(rate)
    audio = (rng.standard_normal(rate * 2) * 0.6).astype(np.float32)
    whole = TruePeakLimiter(rate, -1.0)
    expected = np.concatenate([whole.process(audio), whole.flush()])
    for trial in range(3):
        limiter = TruePeakLimiter(rate, -1.0)
        parts = [limiter.process(c) for c in _chunks(audio, np.random.default_rng(trial), 4000)]
        out = np.concatenate([*parts, limiter.flush()])
        assert out.size == audio.size
        np.testing.assert_array_equal(out, expected)
    assert true_peak_dbtp(expected, rate) <= -1.0
    # The delay is exactly `latency`: quiet audio comes out unchanged and in place.
    quiet = audio * 0.05
    limiter = TruePeakLimiter(rate, -1.0)
    np.testing.assert_array_equal(np.concatenate([limiter.process(quiet), limiter.flush()]), quiet)


def test_limiter_handles_streams_shorter_than_its_latency() -> None:
    limiter = TruePeakLimiter(48000, -1.0)
    assert limiter.process(np.full(5, 0.99, np.float32)).size + limiter.flush().size == 5


@pytest.mark.parametrize("target", [-16.0, -20.0])
def test_stream_loudness_lands_near_target_and_never_exceeds_ceiling(target: float) -> None:
    rate = 22050
    audio = _speech_like(rate, 12.0, seed=5, level=0.08)
    audio[3 * rate : 3 * rate + 30] = 0.95
    stream = StreamLoudness(rate, target, -1.0)
    rng = np.random.default_rng(0)
    parts = [stream.process(c) for c in _chunks(audio, rng, 3000)]
    out = np.concatenate([*parts, stream.flush()])
    assert out.size == audio.size
    assert pyloudnorm.Meter(rate).integrated_loudness(out.astype(np.float64)) == pytest.approx(
        target, abs=1.5
    )
    assert true_peak_dbtp(out, rate) <= -1.0


def test_stream_loudness_segment_done_decides_early_and_extra_gain_adds() -> None:
    rate = 16000
    audio = _speech_like(rate, 4.0, seed=2, level=0.05)
    plain = StreamLoudness(rate, -20.0, -1.0)
    louder = StreamLoudness(rate, -20.0, -1.0, extra_gain_db=3.0)
    first = audio[: rate // 2]
    assert plain.process(first).size == 0  # still measuring
    louder.process(first)
    assert plain.segment_done().size > 0  # the first sentence ended: gain decided, audio flows
    louder.segment_done()
    assert plain.gain_db is not None and louder.gain_db is not None
    assert louder.gain_db - plain.gain_db == pytest.approx(3.0)


def test_stream_loudness_waits_through_leading_silence_and_caps_gain() -> None:
    rate = 16000
    stream = StreamLoudness(rate, -16.0, -1.0)
    assert stream.process(np.zeros(int(rate * 1.5), np.float32)).size == 0  # nothing to measure yet
    out = stream.process(_speech_like(rate, 1.0, level=1e-4))
    assert stream.gain_db is not None and stream.gain_db <= 20.0
    total = out.size + stream.flush().size
    assert total == int(rate * 2.5)
