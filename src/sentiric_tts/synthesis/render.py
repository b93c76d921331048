"""The engine job for one request: plan items in order, as the worker runs them.

It yields raw engine chunks framed by SegmentStart / SEGMENT_END, plus the plan's Pause and Mark
items, so the stream can apply prosody and joins per segment. It also bounds what is produced,
whatever the plan estimated: a segment whose audio is far longer than its text can need (runaway
generation, an XTTS failure mode) is cut and logged, and a request whose speech runs past its
allowance ends with BUDGET_SPENT.

Audio length is reckoned in `spoken_length` units (characters, CJK characters and signs read aloud
weighted): the plan's estimate takes SPEECH_SECONDS_PER_CHAR of them, the runaway guard allows a
floor plus a few times as much per segment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from sentiric_tts.engines.base import Engine
from sentiric_tts.failures import RequestError, SynthesisFailed
from sentiric_tts.synthesis.request import PlanItem, Segment
from sentiric_tts.synthesis.text import spoken_length

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentStart:
    segment: Segment


class _SegmentEnd:
    def __repr__(self) -> str:
        return "SEGMENT_END"


SEGMENT_END = _SegmentEnd()


SPEECH_SECONDS_PER_CHAR = 0.07
"""Speech per `spoken_length` unit at speed 1, a little over what the voices take (Piper's
en_US-joe ~0.055 s, XTTS ~0.065 s on English prose), so an honest text is refused before it is
synthesized rather than stopped at the limit: the plan's estimate."""


def expected_speech_seconds(segment: Segment) -> float:
    """About how long a segment's speech lasts (the plan's estimate)."""
    return SPEECH_SECONDS_PER_CHAR * spoken_length(segment.text) / segment.params.speed


@dataclass(frozen=True)
class RunawayGuard:
    """Most audio a segment may produce: floor + per-unit allowance (`spoken_length`), scaled by
    1/speed; the default 0.3 s per unit is about four times what speech takes."""

    floor_s: float
    seconds_per_char: float

    def max_samples(self, segment: Segment, rate: int) -> int:
        seconds = (self.floor_s + self.seconds_per_char * spoken_length(segment.text)) / segment.params.speed
        return int(seconds * rate)


class _BudgetSpent:
    def __repr__(self) -> str:
        return "BUDGET_SPENT"


BUDGET_SPENT = _BudgetSpent()
"""The request's speech ran past its allowance: rendering stopped there."""


class AudioLimitReached(RequestError, SynthesisFailed):
    """A request's audio ran past the limit while it was synthesized (its text takes far longer
    to say than its length suggests). A refusal of the request where no audio has gone out yet
    (422 `audio_too_long`, gRPC INVALID_ARGUMENT); to a door already streaming, the end of a
    synthesis that could not finish (an incomplete body; on the WebSocket and OpenAI's SSE an
    `audio_too_long` error event)."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(
            f"The audio ran past the limit of {limit_s:g} s per request (TTS_MAX_AUDIO_SECONDS) before "
            "the text was done: it takes far longer to say than its length suggests. Split it into "
            "several requests.",
            param="text",
            code="audio_too_long",
        )


def _nobody_waits() -> bool:
    return False


def render(
    engine: Engine,
    items: Sequence[PlanItem],
    guard: RunawayGuard,
    budget_s: float | None = None,
    awaited: Callable[[], bool] = _nobody_waits,
) -> Iterator[object]:
    """The plan's items as the stream takes them. `budget_s`: the speech the request may produce
    in all (its audio limit less its planned pauses); past it, BUDGET_SPENT ends the job.
    `awaited()`, asked as each segment starts: whether someone still waits for the request's
    first audio (the scheduler's JobState.awaited), passed on to the engine."""
    budget = None if budget_s is None else int(budget_s * engine.sample_rate)
    spent = 0
    for item in items:
        if not isinstance(item, Segment):
            yield item
            continue
        yield SegmentStart(item)
        limit = guard.max_samples(item, engine.sample_rate)
        produced = 0
        chunks = engine.synthesize(item.text, item.language, item.voice, item.params, awaited=awaited())
        try:
            for chunk in chunks:
                audio = np.nan_to_num(
                    np.asarray(chunk, dtype=np.float32).reshape(-1), posinf=1.0, neginf=-1.0
                )
                runaway = produced + audio.size > limit
                if runaway:
                    log.warning(
                        "runaway generation cut: %d chars of text gave over %.1f s of audio (%r)",
                        len(item.text),
                        limit / engine.sample_rate,
                        item.text[:60],
                    )
                    audio = audio[: limit - produced]
                produced += audio.size
                spent += audio.size
                if budget is not None and spent > budget:
                    log.warning(
                        "request stopped: its speech ran past %.1f s (%r)",
                        budget / engine.sample_rate,
                        item.text[:60],
                    )
                    yield BUDGET_SPENT
                    return
                if audio.size:
                    yield audio
                if runaway:
                    break
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        yield SEGMENT_END
