"""Segment joins (audio/joins.py) on the fake engine's audio, fed in its chunks: predicted lengths
and boundaries, and no click where segments meet."""

from __future__ import annotations

import numpy as np
import pytest

from sentiric_tts.audio.joins import SegmentJoiner, boundary_jumps
from sentiric_tts.engines.base import GenerationParams, Voice
from tests.support.fake_engine import SAMPLE_RATE, TONE_PEAK, TONE_SWING, VOICE_HZ, FakeEngine

RATE = SAMPLE_RATE
SENTENCES = [
    ("Good morning.", "fake-low"),
    ("How can I help you today?", "fake-high"),
    ("Yes.", "fake-low"),
    ("The shop opens at nine and closes at six.", "fake-high"),
]


def join(
    joiner: SegmentJoiner, engine: FakeEngine, pauses_ms: list[float | None] | None = None
) -> tuple[np.ndarray, list[int]]:
    """The sentences through `joiner` chunk by chunk, as the stream feeds it; (audio, lengths)."""
    parts: list[np.ndarray] = []
    lengths: list[int] = []
    for index, (text, voice) in enumerate(SENTENCES):
        parts.append(joiner.begin_segment(None if pauses_ms is None else pauses_ms[index]))
        for chunk in engine.synthesize(text, "en", Voice(voice), GenerationParams()):
            parts.append(joiner.process(chunk))
        parts.append(joiner.end_segment())
        lengths.append(engine.expected_samples(text))
    parts.append(joiner.flush())
    return np.concatenate(parts), lengths


@pytest.mark.parametrize("crossfade_ms", [1.0, 10.0, 30.0])
@pytest.mark.parametrize("pause_ms", [0.0, 200.0])
def test_lengths_and_boundaries_are_predicted(crossfade_ms: float, pause_ms: float) -> None:
    joiner = SegmentJoiner(RATE, crossfade_ms, pause_ms, keep_ms=5.0)
    out, lengths = join(joiner, FakeEngine())
    pause = round(pause_ms * RATE / 1000)
    # The fake's tone is never silent: nothing is trimmed, fades keep the length.
    assert out.size == sum(lengths) + pause * (len(lengths) - 1)
    assert joiner.boundaries == [sum(lengths[:i]) + pause * i for i in range(len(lengths))]


def test_each_segment_may_have_its_own_pause_but_the_first_has_none() -> None:
    joiner = SegmentJoiner(RATE, 10.0, 200.0)
    pauses_ms: list[float | None] = [700.0, None, 0.0, 120.0]
    out, lengths = join(joiner, FakeEngine(), pauses_ms)
    gaps = [0, round(0.2 * RATE), 0, round(0.12 * RATE)]
    assert out.size == sum(lengths) + sum(gaps)
    starts = np.cumsum([0] + [length + gap for length, gap in zip(lengths[:-1], gaps[1:], strict=True)])
    assert joiner.boundaries == starts.tolist()
    assert np.count_nonzero(out == 0) == sum(gaps)


@pytest.mark.parametrize("crossfade_ms", [1.0, 10.0])
@pytest.mark.parametrize("pause_ms", [0.0, 200.0])
def test_no_click_where_segments_meet(pause_ms: float, crossfade_ms: float) -> None:
    joiner = SegmentJoiner(RATE, crossfade_ms, pause_ms)
    out, _ = join(joiner, FakeEngine())
    # The steepest step the audio itself takes (the high voice's tone), and what a raised-cosine
    # fade of the loudest sample may add to it: no step anywhere is larger.
    steepest_tone = 2 * TONE_SWING * np.sin(np.pi * max(VOICE_HZ.values()) / RATE)
    fade = max(1, round(crossfade_ms * RATE / 1000))
    bound = steepest_tone + TONE_PEAK * np.sin(0.5 * np.pi / fade)
    starts = joiner.boundaries[1:]
    ends = [start - round(pause_ms * RATE / 1000) for start in starts]
    at, inside = boundary_jumps(out, [0, *sorted(starts + ends), out.size], round(0.015 * RATE))
    assert inside <= steepest_tone + 1e-6  # away from every edge: the tone, untouched
    assert at <= bound

    # Butted together (or with silence between) without the joiner, the same segments click.
    engine = FakeEngine()
    raw_parts: list[np.ndarray] = []
    for text, voice in SENTENCES:
        raw_parts += [engine.expected_audio(text, voice), np.zeros(round(pause_ms * RATE / 1000), np.float32)]
    raw = np.concatenate(raw_parts)
    raw_bounds = np.cumsum([part.size for part in raw_parts])[:-1].tolist()
    raw_at, _ = boundary_jumps(raw, raw_bounds, 1)
    assert raw_at > 5 * bound if crossfade_ms > 1 else raw_at > bound


def test_chunking_does_not_change_the_join() -> None:
    whole_engine = FakeEngine(chunk_samples=10**9)  # each segment in one chunk
    out_whole, _ = join(SegmentJoiner(RATE, 10.0, 200.0), whole_engine)
    out_chunked, _ = join(SegmentJoiner(RATE, 10.0, 200.0), FakeEngine(chunk_samples=7))
    np.testing.assert_array_equal(out_whole, out_chunked)
