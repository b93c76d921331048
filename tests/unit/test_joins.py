"""Segment joins: no clicks at boundaries, pauses, trimming and chunking invariance."""

from __future__ import annotations

import numpy as np
import pytest

from sentiric_tts.audio.joins import SegmentJoiner, boundary_jumps, fade, join_segments, trim_silence

RATE = 16000


def _segments(seed: int, count: int = 40) -> list[np.ndarray]:
    """Sine bursts that start and end at full swing (a hard splice clicks), some with silence."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        n = int(rng.integers(RATE // 5, RATE))
        t = np.arange(n) / RATE
        seg = (0.6 * np.sin(2 * np.pi * rng.uniform(90, 300) * t + rng.uniform(0, 2 * np.pi))).astype(
            np.float32
        )
        if i % 3 == 0:
            seg = np.concatenate([np.zeros(700, np.float32), seg, np.zeros(1900, np.float32)])
        out.append(seg)
    return out


def _stream(joiner: SegmentJoiner, segments: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    parts = []
    for seg in segments:
        parts.append(joiner.begin_segment())
        pos = 0
        while pos < seg.size:
            size = int(rng.integers(1, 2500))
            parts.append(joiner.process(seg[pos : pos + size]))
            pos += size
        parts.append(joiner.end_segment())
    parts.append(joiner.flush())
    return np.concatenate(parts)


@pytest.mark.parametrize("pause_ms", [0.0, 150.0])
@pytest.mark.parametrize("trim_inner", [True, False])
def test_boundaries_jump_no_more_than_the_audio_itself(pause_ms: float, trim_inner: bool) -> None:
    segments = _segments(seed=1)
    raw = np.concatenate(segments)
    raw_at, _ = boundary_jumps(raw, list(np.cumsum([s.size for s in segments])[:-1]), 1)
    smooth_step = 0.6 * 2 * np.pi * 300 / RATE  # the largest step a 300 Hz sine takes
    assert raw_at > 5 * smooth_step  # the synthetic splices do click

    joiner = SegmentJoiner(RATE, crossfade_ms=10, pause_ms=pause_ms, trim_inner=trim_inner)
    out = _stream(joiner, segments, np.random.default_rng(2))
    assert len(joiner.boundaries) == len(segments)
    radius = int(RATE * 0.2)  # covers the fade-out, the pause and the fade-in
    at, inside = boundary_jumps(out, joiner.boundaries[1:], radius)
    assert at <= inside


def test_streamed_equals_whole_segments() -> None:
    segments = _segments(seed=3, count=10)
    streamed = _stream(SegmentJoiner(RATE, pause_ms=120), segments, np.random.default_rng(4))
    whole = join_segments(segments, SegmentJoiner(RATE, pause_ms=120))
    np.testing.assert_array_equal(streamed, whole)


def test_pause_length_and_edge_trimming() -> None:
    tone = (0.5 * np.cos(2 * np.pi * 200 * np.arange(RATE // 2) / RATE)).astype(np.float32)
    padded = np.concatenate([np.zeros(RATE, np.float32), tone, np.zeros(RATE, np.float32)])
    joiner = SegmentJoiner(RATE, crossfade_ms=10, pause_ms=200, keep_ms=20)
    out = join_segments([padded, padded], joiner)
    keep = int(0.02 * RATE)
    # Each segment: keep + tone + keep; plus one 200 ms pause between them.
    assert out.size == 2 * (tone.size + 2 * keep) + int(0.2 * RATE)
    assert joiner.boundaries == [0, tone.size + 2 * keep + int(0.2 * RATE)]
    assert abs(out[0]) < 1e-3 and abs(out[-1]) < 1e-3


def test_trailing_silence_kept_between_segments_without_inner_trim() -> None:
    tone = (0.5 * np.cos(2 * np.pi * 200 * np.arange(RATE // 2) / RATE)).astype(np.float32)
    padded = np.concatenate([tone, np.zeros(RATE // 4, np.float32)])
    out = join_segments([padded, padded], SegmentJoiner(RATE, pause_ms=0, trim_inner=False, keep_ms=0))
    assert out.size == padded.size + tone.size  # only the last segment's trailing silence goes


def test_trim_silence_and_fade_helpers() -> None:
    x = np.concatenate([np.zeros(1000), np.ones(500) * 0.5, np.zeros(1000)]).astype(np.float32)
    trimmed = trim_silence(x, RATE, keep_ms=5)
    assert trimmed.size == 500 + 2 * 80
    assert trim_silence(np.zeros(100, np.float32), RATE).size == 0
    faded = fade(np.ones(1600, np.float32), RATE, fade_in_ms=10, fade_out_ms=10)
    assert faded[0] < 0.01 and faded[-1] < 0.01 and faded[800] == 1.0
    assert np.all(np.diff(faded[:160]) > 0)
