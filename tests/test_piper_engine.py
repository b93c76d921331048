"""The Piper engine's two sessions per voice: every core for a lone call, one per overlapping call."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sentiric_tts.engines.base import GenerationParams, Voice
from sentiric_tts.engines.piper import PiperEngine, PiperSessions
from sentiric_tts.engines.thread_priority import call_at_lower_priority, current_thread_nice

TEXT = "The parcel left the warehouse this morning."


class CountingSession:
    """Wraps a real onnxruntime session, counting runs and optionally acting during one."""

    def __init__(self, session: object, during_run: Callable[[], None] | None = None) -> None:
        self._session = session
        self.runs = 0
        self.during_run = during_run

    def run(self, *args: object, **kwargs: object) -> object:
        self.runs += 1
        if self.during_run is not None:
            action, self.during_run = self.during_run, None
            action()
        return self._session.run(*args, **kwargs)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._session, name)


@pytest.fixture(scope="module")
def engine() -> PiperEngine:
    return PiperEngine.load(sessions=PiperSessions(overlap_threads=1, lone_threads=2, lone_pool_nice=3))


def speak(engine: PiperEngine, text: str = TEXT) -> np.ndarray:
    return np.concatenate(
        list(engine.synthesize(text, "en", Voice(engine.default_voice()), GenerationParams()))
    )


def test_a_lone_call_takes_the_wide_session_and_an_overlapping_one_the_narrow(engine: PiperEngine) -> None:
    loaded = engine._voices[engine.default_voice()]
    assert loaded.lone_voice is not None
    overlapped: list[np.ndarray] = []
    narrow = CountingSession(loaded.voice.session)
    # While the lone call computes, a second call starts on another thread: it overlaps.
    wide = CountingSession(
        loaded.lone_voice.session, during_run=lambda: overlapped.append(_on_thread(engine))
    )
    loaded.voice.session, loaded.lone_voice.session = narrow, wide  # type: ignore[assignment]
    try:
        alone = speak(engine)
    finally:
        loaded.voice.session, loaded.lone_voice.session = narrow._session, wide._session  # type: ignore[assignment]
    assert wide.runs == 1 and narrow.runs == 1
    # Same model, same text: the session a call took does not change what it says.
    assert overlapped[0].size == alone.size
    assert float(np.max(np.abs(overlapped[0] - alone))) < 1e-3
    assert float(np.sqrt(np.mean(alone**2))) > 0.01


def _on_thread(engine: PiperEngine) -> np.ndarray:
    result: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: result.append(speak(engine)))
    worker.start()
    worker.join(60)
    return result[0]


def test_speed_changes_render_on_one_session_per_call(engine: PiperEngine) -> None:
    natural = speak(engine)
    fast = np.concatenate(
        list(engine.synthesize(TEXT, "en", Voice(engine.default_voice()), GenerationParams(speed=1.5)))
    )
    assert abs(fast.size - natural.size / 1.5) <= 0.02 * natural.size


def test_without_a_lone_session_every_call_uses_the_one_session() -> None:
    engine = PiperEngine.load(sessions=PiperSessions(overlap_threads=1, lone_threads=1))
    assert engine._voices[engine.default_voice()].lone_voice is None
    assert speak(engine).size > 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_threads_created_at_lower_priority_keep_it() -> None:
    base = current_thread_nice()
    assert base is not None
    seen: list[int | None] = []

    def start_a_thread() -> str:
        child = threading.Thread(target=lambda: seen.append(current_thread_nice()))
        child.start()
        child.join()
        seen.append(current_thread_nice())
        return "made"

    assert call_at_lower_priority(start_a_thread, 4) == "made"
    assert seen == [min(19, base + 4)] * 2
    assert current_thread_nice() == base  # the caller's own priority is untouched

    def fail() -> None:
        raise ValueError("no model file")

    with pytest.raises(ValueError, match="no model file"):
        call_at_lower_priority(fail, 4)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_the_lone_sessions_pool_threads_run_at_the_stream_threads_priority() -> None:
    def nice_values() -> dict[str, int]:
        values = {}
        for task in Path("/proc/self/task").iterdir():
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            values[task.name] = int(fields[16])  # field 19 of stat: nice
        return values

    base = current_thread_nice()
    assert base is not None
    before = nice_values()
    engine = PiperEngine.load(sessions=PiperSessions(overlap_threads=1, lone_threads=2, lone_pool_nice=6))
    new_threads = {tid: nice for tid, nice in nice_values().items() if tid not in before}
    # onnxruntime's pool for a two-thread session: one more thread, created at the lower priority.
    assert min(19, base + 6) in new_threads.values()
    assert speak(engine).size > 0
