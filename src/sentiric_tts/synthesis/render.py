"""The engine job for one request: plan items in order, as the worker runs them.

It yields raw engine chunks framed by SegmentStart / SEGMENT_END, plus the plan's Pause and Mark
items, so the stream can apply prosody and joins per segment. It also guards against runaway
generation (an XTTS failure mode): a segment whose audio is far longer than its text can need is
cut and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from sentiric_tts.engines.base import Engine
from sentiric_tts.synthesis.request import PlanItem, Segment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentStart:
    segment: Segment


class _SegmentEnd:
    def __repr__(self) -> str:
        return "SEGMENT_END"


SEGMENT_END = _SegmentEnd()


@dataclass(frozen=True)
class RunawayGuard:
    """Most audio a segment may produce: floor + per-character allowance, scaled by 1/speed."""

    floor_s: float
    seconds_per_char: float

    def max_samples(self, segment: Segment, rate: int) -> int:
        seconds = (self.floor_s + self.seconds_per_char * len(segment.text)) / segment.params.speed
        return int(seconds * rate)


def render(engine: Engine, items: Sequence[PlanItem], guard: RunawayGuard) -> Iterator[object]:
    for item in items:
        if not isinstance(item, Segment):
            yield item
            continue
        yield SegmentStart(item)
        limit = guard.max_samples(item, engine.sample_rate)
        produced = 0
        chunks = engine.synthesize(item.text, item.language, item.voice, item.params)
        try:
            for chunk in chunks:
                audio = np.nan_to_num(
                    np.asarray(chunk, dtype=np.float32).reshape(-1), posinf=1.0, neginf=-1.0
                )
                if produced + audio.size > limit:
                    log.warning(
                        "runaway generation cut: %d chars of text gave over %.1f s of audio (%r)",
                        len(item.text),
                        limit / engine.sample_rate,
                        item.text[:60],
                    )
                    yield audio[: limit - produced]
                    break
                produced += audio.size
                if audio.size:
                    yield audio
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        yield SEGMENT_END
