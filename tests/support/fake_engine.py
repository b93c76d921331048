"""A deterministic engine for unit tests: the engine protocol (engines/base.py), no model.

Its audio is a pure function of its input, so tests can predict every sample:

- length: `SAMPLES_PER_CHAR` samples per character of the segment's text, divided by the speed
  (`FakeEngine.expected_samples`);
- content: a cosine at the voice's frequency (`VOICE_HZ`) around a constant offset, between
  `TONE_FLOOR` and `TONE_PEAK`. It never comes near zero, so every sample is "loud" to the joiner
  (nothing is trimmed from a segment's edges) and an exact zero in the output is a pause;
- chunks of `CHUNK_SAMPLES` samples, the last one shorter.

It is a thread engine (the scheduler may call it from several threads at once) that records every
call (`calls`): text, language, voice id, parameters, `awaited`, the calling thread, how many
chunks it yielded and how it ended. `fail_on` makes calls on a given text raise an EngineError
before or after some chunks; `hold` makes them wait on a threading.Event before a given chunk,
so tests can cancel a call in progress or keep it from finishing. Every wait is bounded: a call
held past `hold_timeout_s` fails instead of hanging the test run.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from sentiric_tts.engines.base import EngineError, EngineKind, GenerationParams, Voice, VoiceInfo

SAMPLE_RATE = 24000
"""Native rate: 8, 16 and 48 kHz are exact ratios of it (1/3, 2/3, 2)."""
SAMPLES_PER_CHAR = 240
"""10 ms of audio per character at speed 1 (real voices take 55-65 ms)."""
CHUNK_SAMPLES = 1200
"""50 ms per chunk."""
VOICE_HZ = {"fake-low": 150.0, "fake-high": 300.0}
"""The engine's voices and the frequency of each one's tone."""
LANGUAGES = ("en", "de")
TONE_OFFSET = 0.3
TONE_SWING = 0.15
TONE_FLOOR = TONE_OFFSET - TONE_SWING
TONE_PEAK = TONE_OFFSET + TONE_SWING

CallOutcome = Literal["running", "finished", "closed", "failed"]


@dataclass
class EngineCall:
    """One `synthesize` call as the engine saw it."""

    text: str
    language: str
    voice_id: str
    params: GenerationParams
    awaited: bool
    thread: str
    """Name of the thread that made the call (a scheduler worker's: engine-0-stream-0, ...)."""
    chunks: int = 0
    """Chunks yielded so far."""
    outcome: CallOutcome = "running"
    """finished (all its audio yielded), closed (its iterator closed before the end: cancelled),
    failed (a `fail_on` rule raised)."""


@dataclass
class _Rule:
    fragment: str
    after_chunks: int
    gate: threading.Event | None = None  # hold rules wait on it; fail rules have none
    error: type[EngineError] = EngineError  # what a fail rule raises
    waiting: list[EngineCall] = field(default_factory=list)


class FakeEngine:
    """A thread-kind engine whose audio tests can predict (see the module doc)."""

    name = "fake"
    device = "cpu"
    supports_cloning = False
    kind: EngineKind = "thread"

    def __init__(
        self,
        *,
        sample_rate: int = SAMPLE_RATE,
        samples_per_char: int = SAMPLES_PER_CHAR,
        chunk_samples: int = CHUNK_SAMPLES,
        max_chars: int = 200,
        streams_within_segment: bool = True,
        hold_timeout_s: float = 30.0,
    ) -> None:
        self.sample_rate = sample_rate
        self.samples_per_char = samples_per_char
        self.chunk_samples = chunk_samples
        self.streams_within_segment = streams_within_segment
        self._max_chars = max_chars
        self._hold_timeout_s = hold_timeout_s
        self._changed = threading.Condition()
        self._calls: list[EngineCall] = []
        self._failures: list[_Rule] = []
        self._holds: list[_Rule] = []
        self.warmups = 0

    # --- the engine protocol ---

    def languages(self) -> list[str]:
        return list(LANGUAGES)

    def voices(self) -> list[VoiceInfo]:
        return [
            VoiceInfo(voice_id, voice_id.replace("-", " ").title(), "studio", LANGUAGES, f"{hz:g} Hz tone")
            for voice_id, hz in VOICE_HZ.items()
        ]

    def default_voice(self) -> str:
        return next(iter(VOICE_HZ))

    def max_segment_chars(self, language: str) -> int:
        return self._max_chars

    def fingerprint(self) -> str:
        spec = f"{self.sample_rate}:{self.samples_per_char}:{self.chunk_samples}:{sorted(VOICE_HZ.items())}"
        return "fake-" + hashlib.sha256(spec.encode()).hexdigest()[:16]

    def warmup(self) -> None:
        self.warmups += 1

    def synthesize(
        self, text: str, language: str, voice: Voice, params: GenerationParams, awaited: bool = False
    ) -> Iterator[np.ndarray]:
        if voice.id not in VOICE_HZ:
            raise EngineError(f"the fake engine has no voice {voice.id!r}")
        if language not in LANGUAGES:
            raise EngineError(f"the fake engine does not speak {language!r}")
        call = EngineCall(text, language, voice.id, params, awaited, threading.current_thread().name)
        with self._changed:
            self._calls.append(call)
            fail = next((rule for rule in self._failures if rule.fragment in text), None)
            hold = next((rule for rule in self._holds if rule.fragment in text), None)
            self._changed.notify_all()
        return self._chunks(call, self.expected_audio(text, voice.id, params.speed), fail, hold)

    def _chunks(
        self, call: EngineCall, audio: np.ndarray, fail: _Rule | None, hold: _Rule | None
    ) -> Iterator[np.ndarray]:
        starts = range(0, audio.size, self.chunk_samples)
        try:
            for index, start in enumerate([*starts, audio.size]):
                if hold is not None and index == hold.after_chunks:
                    self._wait_at(hold, call)
                if fail is not None and index == fail.after_chunks:
                    self._end(call, "failed")
                    raise fail.error(f"fake failure on {call.text!r} after {index} chunk(s)")
                if start >= audio.size:
                    break
                chunk = audio[start : start + self.chunk_samples].copy()
                with self._changed:
                    call.chunks += 1
                    self._changed.notify_all()
                yield chunk
        except GeneratorExit:
            self._end(call, "closed")
            raise
        self._end(call, "finished")

    def _wait_at(self, rule: _Rule, call: EngineCall) -> None:
        assert rule.gate is not None
        with self._changed:
            rule.waiting.append(call)
            self._changed.notify_all()
        if not rule.gate.wait(self._hold_timeout_s):
            self._end(call, "failed")
            raise EngineError(f"the fake engine was held on {call.text!r} and never released")

    def _end(self, call: EngineCall, outcome: CallOutcome) -> None:
        with self._changed:
            call.outcome = outcome
            self._changed.notify_all()

    # --- what tests predict ---

    def expected_samples(self, text: str, speed: float = 1.0) -> int:
        """How many samples `synthesize` yields for `text` at `speed` (at `sample_rate`)."""
        return max(1, round(len(text) * self.samples_per_char / speed))

    def expected_audio(self, text: str, voice_id: str | None = None, speed: float = 1.0) -> np.ndarray:
        """Exactly what `synthesize` yields for `text`, all chunks together."""
        hz = VOICE_HZ[voice_id or self.default_voice()]
        n = np.arange(self.expected_samples(text, speed))
        return (TONE_OFFSET + TONE_SWING * np.cos(2 * np.pi * hz * n / self.sample_rate)).astype(np.float32)

    # --- what tests control ---

    def fail_on(self, fragment: str, after_chunks: int = 1, error: type[EngineError] = EngineError) -> None:
        """Calls whose text contains `fragment` raise `error` (EngineError, or a subclass such as
        EngineLost) after `after_chunks` chunks (0: before any audio)."""
        with self._changed:
            self._failures.append(_Rule(fragment, after_chunks, error=error))

    def hold(self, fragment: str, after_chunks: int = 0) -> threading.Event:
        """Calls whose text contains `fragment` wait, after `after_chunks` chunks, until the
        returned event is set (`wait_held` tells when one waits there)."""
        gate = threading.Event()
        with self._changed:
            self._holds.append(_Rule(fragment, after_chunks, gate))
        return gate

    def release_all(self) -> None:
        """Set every hold's event (teardown: no call stays blocked)."""
        with self._changed:
            for rule in self._holds:
                assert rule.gate is not None
                rule.gate.set()

    # --- what tests observe ---

    @property
    def calls(self) -> list[EngineCall]:
        """Every call so far, in the order they were made (a copy)."""
        with self._changed:
            return list(self._calls)

    def texts(self) -> list[str]:
        return [call.text for call in self.calls]

    def forget(self) -> None:
        """Drop the calls recorded so far (e.g. those of start-up calibration)."""
        with self._changed:
            self._calls.clear()

    def wait_until(self, condition: Callable[[FakeEngine], bool], timeout_s: float = 10.0) -> bool:
        """Wait until `condition(self)` holds (checked on every call, chunk and ending); False
        if `timeout_s` passed first. Blocks the calling thread: from a coroutine, run it with
        asyncio.to_thread."""
        with self._changed:
            return self._changed.wait_for(lambda: condition(self), timeout_s)

    def wait_held(self, fragment: str, timeout_s: float = 10.0) -> EngineCall:
        """The call that waits at `fragment`'s hold, once one does (AssertionError after
        `timeout_s`)."""

        def held(_: FakeEngine) -> bool:
            return any(rule.fragment == fragment and rule.waiting for rule in self._holds)

        assert self.wait_until(held, timeout_s), f"no call was held on {fragment!r}"
        with self._changed:
            return next(rule.waiting[0] for rule in self._holds if rule.fragment == fragment and rule.waiting)
