"""The /ws/tts session (doors/websocket/session.py) driven directly: a fake socket in place of Starlette's,
the real Runtime on the fake engine, so every frame and offset can be predicted (docs/api.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from starlette.websockets import WebSocket, WebSocketState

from sentiric_tts.doors.websocket.session import SpeechSession
from sentiric_tts.engines.base import EngineLost
from sentiric_tts.failures import ENGINE_UNAVAILABLE_MESSAGE
from sentiric_tts.runtime import Runtime
from tests.support.fake_engine import SAMPLE_RATE, FakeEngine
from tests.support.fake_runtime import fake_runtime, zero_runs

Frame = dict[str, Any] | bytes


class FakeSocket:
    """What a SpeechSession uses of Starlette's WebSocket, with the client's end in the test's hands:
    `send` puts a client message in, `frames` holds what the server sent, in order."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.frames: list[Frame] = []
        self.client_state = WebSocketState.CONNECTED
        self.close_code: int | None = None
        self._arrived = asyncio.Condition()

    # --- the server's side ---

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send_text(self, data: str) -> None:
        await self._add(json.loads(data))

    async def send_bytes(self, data: bytes) -> None:
        await self._add(data)

    async def close(self, code: int = 1000) -> None:
        self.close_code = code
        self.client_state = WebSocketState.DISCONNECTED

    async def _add(self, frame: Frame) -> None:
        assert self.client_state == WebSocketState.CONNECTED, "sent on a closed socket"
        async with self._arrived:
            self.frames.append(frame)
            self._arrived.notify_all()

    # --- the client's side ---

    def send(self, **message: Any) -> None:
        self.incoming.put_nowait({"type": "websocket.receive", "text": json.dumps(message)})

    def send_raw(self, text: str | None = None, data: bytes | None = None) -> None:
        self.incoming.put_nowait({"type": "websocket.receive", "text": text, "bytes": data})

    def disconnect(self) -> None:
        self.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})

    @property
    def events(self) -> list[dict[str, Any]]:
        return [frame for frame in self.frames if isinstance(frame, dict)]

    def audio(self) -> np.ndarray:
        return np.frombuffer(b"".join(f for f in self.frames if isinstance(f, bytes)), dtype="<i2")

    def audio_after(self, kind: str, nth: int = 1) -> int:
        """Audio bytes sent after the `nth` event of type `kind` (0 before it is sent)."""
        seen = 0
        sent = 0
        for frame in self.frames:
            if isinstance(frame, dict) and frame["type"] == kind:
                seen += 1
            elif isinstance(frame, bytes) and seen >= nth:
                sent += len(frame)
        return sent

    async def until(self, condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Wait until `condition()` holds, checked whenever the server sends a frame."""
        async with asyncio.timeout(timeout_s), self._arrived:
            await self._arrived.wait_for(condition)

    async def event(self, kind: str, nth: int = 1, timeout_s: float = 10.0) -> dict[str, Any]:
        """The `nth` event of type `kind`, once it has been sent."""

        def found() -> list[dict[str, Any]]:
            return [event for event in self.events if event["type"] == kind]

        await self.until(lambda: len(found()) >= nth, timeout_s)
        return found()[nth - 1]


Scenario = Callable[[FakeSocket, SpeechSession], Awaitable[None]]


def run_session(runtime: Runtime, scenario: Scenario, timeout_s: float = 20.0) -> FakeSocket:
    """Run a session on a fake socket while `scenario` plays the client; the session must end."""

    async def main() -> FakeSocket:
        socket = FakeSocket()
        session = SpeechSession(runtime, cast(WebSocket, socket), client="unit-test")
        running = asyncio.create_task(session.run())
        await scenario(socket, session)
        # Not wait_for: the session swallows a cancellation while it ends (run's `finally`), so
        # wait_for's timeout would return as if the session had ended by itself.
        done, _ = await asyncio.wait({running}, timeout=timeout_s)
        assert done, "the session did not end"
        running.result()
        return socket

    return asyncio.run(main())


RATE = SAMPLE_RATE
PAUSE = round(0.2 * RATE)


def offset(samples: int, rate: int = RATE) -> float:
    return round(samples / rate, 4)


def test_text_in_pieces_is_spoken_sentence_by_sentence_with_events_in_order(
    runtime: Runtime, engine: FakeEngine
) -> None:
    async def client(socket: FakeSocket, _: SpeechSession) -> None:
        socket.send(type="start")
        started = await socket.event("started")
        assert started == {
            "type": "started",
            "format": "pcm",
            "content_type": f"audio/L16;rate={RATE};channels=1",
            "sample_rate": RATE,
            "voice": "fake-low",
            "language": "en",
        }
        for token in ["Hel", "lo the", "re. How"]:
            socket.send(type="text", text=token)
        # The first sentence is spoken as soon as it is complete, before the rest arrives.
        assert (await socket.event("sentence_finished"))["sentence"] == 0
        for token in [" can I", " help?"]:
            socket.send(type="text", text=token)
        socket.send(type="close")

    socket = run_session(runtime, client)
    first, second = (engine.expected_samples(text) for text in ("Hello there.", "How can I help?"))
    assert engine.texts() == ["Hello there.", "How can I help?"]
    assert [(e["type"], e.get("sentence")) for e in socket.events] == [
        ("started", None),
        ("sentence_started", 0),
        ("sentence_finished", 0),
        ("sentence_started", 1),
        ("sentence_finished", 1),
        ("done", None),
    ]
    events = socket.events
    assert events[1] == {
        "type": "sentence_started",
        "sentence": 0,
        "text": "Hello there.",
        "audio_offset": 0.0,
    }
    assert events[2]["audio_offset"] == events[2]["duration"] == offset(first)
    assert events[3]["audio_offset"] == offset(first + PAUSE)  # after the sentence pause
    assert events[4]["duration"] == offset(second)
    assert events[5] == {"type": "done", "sentences": 2, "audio_seconds": offset(first + PAUSE + second)}
    # Audio between each sentence's start and finish events; the pause before the second starts.
    kinds = ["audio" if isinstance(f, bytes) else f["type"] for f in socket.frames]
    runs = [kind for n, kind in enumerate(kinds) if kind != "audio" or kinds[n - 1] != "audio"]
    assert runs == [
        "started",
        "sentence_started",
        "audio",
        "sentence_finished",
        "audio",
        "sentence_started",
        "audio",
        "sentence_finished",
        "done",
    ]
    audio = socket.audio()
    assert audio.size == first + PAUSE + second
    assert zero_runs(audio) == [PAUSE]
    assert socket.close_code == 1000


def test_the_session_rate_applies_to_audio_and_pauses(runtime: Runtime, engine: FakeEngine) -> None:
    async def client(socket: FakeSocket, _: SpeechSession) -> None:
        socket.send(type="start", sample_rate=16000, voice="fake-high")
        socket.send(type="text", text="One two three. Four five six. ")
        socket.send(type="close")

    socket = run_session(runtime, client)
    assert socket.events[0]["sample_rate"] == 16000 and socket.events[0]["voice"] == "fake-high"
    sentences = [engine.expected_samples(text) * 16000 // RATE for text in engine.texts()]
    pause = round(0.2 * 16000)
    assert socket.audio().size == sum(sentences) + pause
    assert socket.events[-1]["audio_seconds"] == offset(sum(sentences) + pause, 16000)
    assert {call.voice_id for call in engine.calls} == {"fake-high"}


def test_flush_speaks_an_unfinished_sentence_and_says_when_it_is_sent(
    runtime: Runtime, engine: FakeEngine
) -> None:
    async def client(socket: FakeSocket, _: SpeechSession) -> None:
        socket.send(type="start")
        socket.send(type="text", text="No ending here")
        socket.send(type="flush")
        flushed = await socket.event("flushed")
        assert flushed["audio_offset"] == offset(engine.expected_samples("No ending here"))
        assert socket.audio().size == engine.expected_samples("No ending here")  # all sent before
        socket.send(type="text", text="And more")
        socket.send(type="close")

    socket = run_session(runtime, client)
    assert engine.texts() == ["No ending here", "And more"]
    # A piece cut without a sentence end is followed by the pause a comma would have.
    clause = round(0.12 * RATE)
    assert zero_runs(socket.audio()) == [clause]
    assert socket.events[-1]["type"] == "done"


def test_cancel_stops_the_sentence_in_progress_and_drops_what_waits(
    runtime: Runtime, engine: FakeEngine
) -> None:
    two = "Two is a sentence of several chunks of audio."
    gate = engine.hold("Two is", after_chunks=1)

    async def client(socket: FakeSocket, _: SpeechSession) -> None:
        socket.send(type="start")
        socket.send(type="text", text=f"One. {two} Three. Four. Fi")
        # "Two" has been heard in part, and its engine call waits for its second chunk.
        await asyncio.to_thread(engine.wait_held, "Two is")
        await socket.until(lambda: socket.audio_after("sentence_started", 2) > 0)
        socket.send(type="cancel")
        cancelled = await socket.event("cancelled")
        # "Three." and "Four." waited in the queue; "Fi" in the sentence buffer.
        assert (cancelled["dropped_sentences"], cancelled["dropped_chars"]) == (2, len("Three.Four.Fi"))
        assert cancelled["audio_offset"] == offset(socket.audio().size)  # nothing more of "Two"
        gate.set()
        socket.send(type="text", text="Five.")
        socket.send(type="close")

    socket = run_session(runtime, client)
    assert engine.texts() == ["One.", two, "Five."]
    # Its engine call is closed at its next chunk, not run to its end for nobody.
    assert engine.wait_until(lambda fake: fake.calls[1].outcome == "closed")
    assert engine.calls[1].chunks < engine.expected_samples(two) // engine.chunk_samples
    started = [e["text"] for e in socket.events if e["type"] == "sentence_started"]
    finished = [e["sentence"] for e in socket.events if e["type"] == "sentence_finished"]
    assert started == ["One.", two, "Five."] and finished == [0, 4]
    cancelled = next(e for e in socket.events if e["type"] == "cancelled")
    heard_two = socket.audio_after("sentence_started", 2) - socket.audio_after("cancelled")
    assert 0 < heard_two // 2 < engine.expected_samples(two)
    assert socket.audio().size == round(cancelled["audio_offset"] * RATE) + PAUSE + engine.expected_samples(
        "Five."
    )
    assert socket.events[-1] == {"type": "done", "sentences": 5, "audio_seconds": offset(socket.audio().size)}


@pytest.mark.parametrize("leave", ["cancel", "disconnect"])
def test_stopping_while_audio_flows_stops_the_sentence(tmp_path: Path, leave: str) -> None:
    # Small chunks: a long sentence is many items, and a stop always lands as one arrives or not.
    with fake_runtime(tmp_path, FakeEngine(chunk_samples=240)) as (runtime, _):
        for attempt in range(20):

            async def client(socket: FakeSocket, _: SpeechSession, attempt: int = attempt) -> None:
                socket.send(type="start")
                socket.send(type="text", text="A long sentence " * 10 + "that is stopped. ")
                await socket.until(lambda: socket.audio_after("sentence_started") > 0)
                for _ in range(attempt % 7):  # stop at a different point of the item flow each time
                    await asyncio.sleep(0)
                if leave == "cancel":
                    socket.send(type="cancel")
                    await socket.event("cancelled")
                    socket.send(type="close")
                else:
                    socket.disconnect()

            socket = run_session(runtime, client, timeout_s=2.0)
            assert "sentence_finished" not in [e["type"] for e in socket.events], f"attempt {attempt}"


def test_bad_messages_get_error_events_and_the_session_goes_on(runtime: Runtime, engine: FakeEngine) -> None:
    async def client(socket: FakeSocket, _: SpeechSession) -> None:
        expected = [
            (lambda: socket.send_raw(text="not json"), "invalid_message"),
            (lambda: socket.send(type="text", text="Too early."), "not_started"),
            (lambda: socket.send(type="sing"), "invalid_message"),
            (lambda: socket.send(type="start", voice="nobody"), "unknown_voice"),
            (lambda: socket.send(type="start", format="wma"), "unsupported_format"),
            (lambda: socket.send(type="start", sample_rate=12345), "unsupported_sample_rate"),
            (lambda: socket.send(type="start", language="fr"), "unsupported_language"),
            (lambda: socket.send_raw(data=b"\x00\x01"), "invalid_message"),
        ]
        for n, (send, code) in enumerate(expected, start=1):
            send()
            error = await socket.event("error", nth=n)
            assert error["code"] == code, error
        socket.send(type="start")
        await socket.event("started")
        socket.send(type="start")
        assert (await socket.event("error", nth=len(expected) + 1))["code"] == "already_started"
        socket.send(type="text", txt="typo")
        assert (await socket.event("error", nth=len(expected) + 2))["code"] == "invalid_message"
        socket.send(type="text", text="Still here.")
        socket.send(type="close")
        await socket.event("done")
        assert engine.texts() == ["Still here."]

    socket = run_session(runtime, client)
    assert socket.audio().size == engine.expected_samples("Still here.")


def test_text_after_close_is_refused(runtime: Runtime, engine: FakeEngine) -> None:
    gate = engine.hold("Slow")

    async def client(socket: FakeSocket, _: SpeechSession) -> None:
        socket.send(type="start")
        socket.send(type="text", text="Slow sentence.")
        socket.send(type="close")
        socket.send(type="text", text="Too late.")
        assert (await socket.event("error"))["code"] == "closing"
        gate.set()

    socket = run_session(runtime, client)
    assert socket.events[-1]["type"] == "done" and socket.events[-1]["sentences"] == 1


def test_an_engine_failure_is_an_error_event_for_that_sentence_only(
    runtime: Runtime, engine: FakeEngine
) -> None:
    engine.fail_on("Broken", after_chunks=1)

    async def client(socket: FakeSocket, _: SpeechSession) -> None:
        socket.send(type="start")
        socket.send(type="text", text="Fine one. Broken one, which is long enough. Fine two.")
        socket.send(type="close")

    socket = run_session(runtime, client)
    (error,) = [e for e in socket.events if e["type"] == "error"]
    assert error["code"] == "synthesis_failed"
    assert (error["sentence"], error["text"]) == (1, "Broken one, which is long enough.")
    assert "fake failure" not in error["message"]  # an engine's own text is logged, not sent
    assert [e["sentence"] for e in socket.events if e["type"] == "sentence_finished"] == [0, 2]
    assert socket.events[-1]["type"] == "done"


def test_a_lost_engine_is_an_engine_unavailable_error_event_that_says_to_send_again(
    runtime: Runtime, engine: FakeEngine
) -> None:
    engine.fail_on("Lost", after_chunks=1, error=EngineLost)

    async def client(socket: FakeSocket, _: SpeechSession) -> None:
        socket.send(type="start")
        socket.send(type="text", text="Fine one. Lost one, cut in the middle of its audio. Fine two.")
        socket.send(type="close")

    socket = run_session(runtime, client)
    (error,) = [e for e in socket.events if e["type"] == "error"]
    assert (error["code"], error["message"]) == ("engine_unavailable", ENGINE_UNAVAILABLE_MESSAGE)
    assert error["sentence"] == 1
    assert [e["sentence"] for e in socket.events if e["type"] == "sentence_finished"] == [0, 2]


def test_ssml_marks_are_events_at_their_session_offset(runtime: Runtime, engine: FakeEngine) -> None:
    async def client(socket: FakeSocket, _: SpeechSession) -> None:
        socket.send(type="start", text_type="ssml")
        for piece in ["Hello there. ", 'Alpha <mark name="inside"/>', "beta gamma. ", "Done."]:
            socket.send(type="text", text=piece)
        socket.send(type="close")

    socket = run_session(runtime, client)
    assert engine.texts() == ["Hello there.", "Alpha", "beta gamma.", "Done."]
    started = [e for e in socket.events if e["type"] == "sentence_started"]
    (mark,) = [e for e in socket.events if e["type"] == "mark"]
    # The mark falls after "Alpha", in the second sentence's request.
    assert mark["name"] == "inside"
    assert mark["audio_offset"] == round(
        started[1]["audio_offset"] + engine.expected_samples("Alpha") / RATE, 4
    )
    kinds = [e["type"] for e in socket.events]
    assert kinds.index("mark") < kinds.index("sentence_finished", kinds.index("sentence_started", 2))


def test_text_beyond_the_pending_limit_is_refused_not_lost(tmp_path: Path) -> None:
    with fake_runtime(tmp_path, ws_max_pending_chars=100) as (runtime, engine):
        gate = engine.hold("First")

        async def client(socket: FakeSocket, _: SpeechSession) -> None:
            socket.send(type="start")
            socket.send(type="text", text="First sentence waits. ")
            socket.send(type="text", text="word " * 30)
            refused = await socket.event("error")
            assert refused["code"] == "text_buffer_full" and refused["param"] == "text"
            gate.set()
            socket.send(type="text", text="Short.")
            socket.send(type="close")

        socket = run_session(runtime, client)
        assert engine.texts() == ["First sentence waits.", "Short."]
        assert socket.events[-1]["sentences"] == 2


def test_a_client_that_leaves_ends_the_session_and_its_synthesis(
    runtime: Runtime, engine: FakeEngine
) -> None:
    gate = engine.hold("Long", after_chunks=1)

    async def client(socket: FakeSocket, _: SpeechSession) -> None:
        socket.send(type="start")
        socket.send(type="text", text="Long sentence that the client never hears to its end. ")
        await asyncio.to_thread(engine.wait_held, "Long")
        await socket.until(lambda: socket.audio_after("sentence_started") > 0)
        socket.disconnect()

    socket = run_session(runtime, client)
    assert "done" not in [e["type"] for e in socket.events]
    # Its stream ended as cancelled; its engine call is closed once the held chunk returns.
    cancelled = runtime.metrics.registry.get_sample_value("tts_cancellations_total", {"reason": "cancelled"})
    assert cancelled == 1
    gate.set()
    assert engine.wait_until(lambda fake: fake.calls[0].outcome == "closed")


@pytest.mark.parametrize("fmt", ["wav", "mulaw"])
def test_one_encoder_for_the_whole_session(runtime: Runtime, engine: FakeEngine, fmt: str) -> None:
    async def client(socket: FakeSocket, _: SpeechSession) -> None:
        socket.send(type="start", format=fmt, sample_rate=8000)
        socket.send(type="text", text="One. Two.")
        socket.send(type="close")

    socket = run_session(runtime, client)
    frames = b"".join(f for f in socket.frames if isinstance(f, bytes))
    samples = sum(engine.expected_samples(text) for text in engine.texts()) * 8000 // RATE + round(0.2 * 8000)
    header = frames.index(b"data") + 8 if fmt == "wav" else 0
    bytes_per_sample = 2 if fmt == "wav" else 1
    assert frames.startswith(b"RIFF") == (fmt == "wav")
    assert len(frames) - header == samples * bytes_per_sample
