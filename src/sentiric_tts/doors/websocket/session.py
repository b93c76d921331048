"""One /ws/tts session: text arrives in pieces, speech leaves sentence by sentence.

Two tasks share the socket. The reader takes the client's messages: text goes into a
SentenceBuffer, and each sentence it completes joins the speaker's queue at once. The speaker
synthesizes the queue in order through the one pipeline (each sentence is a request of the
session's client, admitted like any other) and sends binary audio frames plus JSON events.
Every sentence is rendered as PCM at the session's rate and encoded by one encoder for the
whole session, so the frames form one continuous stream in any format.

Backpressure: the speaker awaits each send, so a client that does not read stops its speaker,
whose unread chunks then stop the engine job (the scheduler's bounded buffer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from sentiric_tts.audio.encoders import make_encoder
from sentiric_tts.doors.websocket.messages import (
    BadMessage,
    ControlMessage,
    StartMessage,
    TextMessage,
    parse_message,
)
from sentiric_tts.failures import (
    DeadlineExceeded,
    Problem,
    RateLimited,
    RequestError,
    ServiceBusy,
    ShuttingDown,
    SynthesisFailed,
    problem,
)
from sentiric_tts.observability.context import request_id_var
from sentiric_tts.observability.record import write_access_line
from sentiric_tts.runtime import Runtime
from sentiric_tts.synthesis.incremental import SentenceBuffer, ends_sentence_ignoring_tags
from sentiric_tts.synthesis.request import SynthesisRequest
from sentiric_tts.synthesis.text import clause_pause_s

access_log = logging.getLogger("sentiric_tts.access")


@dataclass(frozen=True)
class _Sentence:
    index: int
    text: str


@dataclass(frozen=True)
class _Flushed:
    pass


@dataclass(frozen=True)
class _Cancelled:
    dropped_sentences: int
    dropped_chars: int


@dataclass(frozen=True)
class _Close:
    pass


@dataclass(frozen=True)
class _ShutDown:
    dropped_sentences: int


_QueueItem = _Sentence | _Flushed | _Cancelled | _Close | _ShutDown

SESSION_CUT_MESSAGE = (
    "The service is shutting down; reconnect (to another instance) and send again what was not spoken."
)
SHUTTING_DOWN_CLOSE = 1012  # "service restart": clients may reconnect at once


@dataclass
class _Voice:
    """What the start message fixed for the whole session."""

    message: StartMessage
    sample_rate: int
    voice_id: str
    language: str


class ListenerClock:
    """When a listener that plays audio in real time as it arrives will have played all of it:
    until then, a new sentence's first audio is not awaited by anyone."""

    def __init__(self) -> None:
        self._played_out_at = 0.0

    def sent(self, seconds: float, now: float) -> None:
        self._played_out_at = max(now, self._played_out_at) + seconds

    def dropped(self) -> None:
        """The listener dropped what it had not played (a cancel)."""
        self._played_out_at = 0.0

    def waiting(self, now: float) -> bool:
        return now >= self._played_out_at


class SpeechSession:
    def __init__(self, runtime: Runtime, socket: WebSocket, client: str) -> None:
        self.runtime = runtime
        self.socket = socket
        self.client = client
        self._send_lock = asyncio.Lock()
        self._queue: asyncio.Queue[_QueueItem] = asyncio.Queue()
        self._voice: _Voice | None = None
        self._buffer: SentenceBuffer | None = None
        self._encoder: Any = None
        self._release_slot: Any = None
        self._current: asyncio.Task[None] | None = None
        self._closing = False
        self._shutting_down = False
        self._cut: _Sentence | None = None  # the sentence a shutdown cut short, if any
        self._sentences = 0
        self._samples = 0  # audio sent, in samples at the session rate (pauses included)
        self._queued_chars = 0
        self._previous_ended_sentence = True
        self._listener = ListenerClock()
        self.started_at = time.perf_counter()
        self.first_audio_at: float | None = None
        self.characters = 0

    # --- sending ---

    async def send_event(self, event: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.socket.send_text(json.dumps(event))

    async def send_error(self, code: str, message: str, **fields: Any) -> None:
        await self.send_event({"type": "error", "code": code, "message": message, **fields})

    async def send_problem(self, told: Problem, **fields: Any) -> None:
        """A failure as this door writes it: an error event with what every door says of it."""
        if told.param is not None:
            fields["param"] = told.param
        if told.allowed is not None:
            fields["allowed"] = told.allowed
        if told.retry_after_s is not None:
            fields["retry_after"] = told.retry_after_s
        await self.send_error(told.code, told.message, **fields)

    async def _send_audio(self, pcm16: np.ndarray) -> None:
        data = self._encoder.encode(pcm16)
        self._samples += pcm16.size
        if self._voice is not None:
            self._listener.sent(pcm16.size / self._voice.sample_rate, time.monotonic())
        if data:
            if self.first_audio_at is None:
                self.first_audio_at = time.perf_counter()
            async with self._send_lock:
                await self.socket.send_bytes(data)

    @property
    def audio_offset(self) -> float:
        return round(self._samples / self._voice.sample_rate, 4) if self._voice else 0.0

    # --- the session ---

    async def run(self) -> None:
        speaker = asyncio.create_task(self._speak_queue())
        try:
            await self._read(speaker)
        finally:
            if not speaker.done():
                if not self._closing:
                    speaker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await speaker
            if self._release_slot is not None:
                self._release_slot()
            ttfa = None if self.first_audio_at is None else self.first_audio_at - self.started_at
            fields = {
                "request_id": request_id_var.get(),
                "door": "websocket",
                "route": "/ws/tts",
                "sentences": self._sentences,
                "chars": self.characters,
                "audio_s": self.audio_offset,
                "ttfa_ms": None if ttfa is None else round(ttfa * 1000),
                "ms": round((time.perf_counter() - self.started_at) * 1000),
            }
            write_access_line(access_log, fields)

    async def _read(self, speaker: asyncio.Task[None]) -> None:
        idle_s = self.runtime.settings.ws_idle_timeout_seconds
        while not speaker.done():
            receive = asyncio.ensure_future(self.socket.receive())
            done, _ = await asyncio.wait(
                {receive, speaker}, timeout=idle_s, return_when=asyncio.FIRST_COMPLETED
            )
            if receive not in done:
                receive.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await receive
                if not done:  # nothing from the client for too long
                    await self.send_error("idle_timeout", f"Nothing received for {idle_s:g} s; closing.")
                    await self.socket.close(1000)
                return
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await self.send_error(
                    "invalid_message", "Send JSON text messages; binary frames are not read."
                )
                continue
            await self._handle(message.get("text") or "")

    async def _handle(self, raw: str) -> None:
        try:
            message = parse_message(raw)
        except BadMessage as exc:
            await self.send_error("invalid_message", exc.message, param=exc.param)
            return
        if isinstance(message, StartMessage):
            await self._start(message)
            return
        if self._voice is None or self._buffer is None:
            await self.send_error(
                "not_started", "Send a 'start' message first (voice, language, format, ...)."
            )
            return
        if self._closing:
            await self.send_error("closing", "The session is closing: no more text is taken after 'close'.")
            return
        if isinstance(message, TextMessage):
            await self._add_text(message.text)
        elif isinstance(message, ControlMessage) and message.type == "cancel":
            self._cancel()
        elif isinstance(message, ControlMessage):  # flush or close
            self._enqueue_sentences(self._buffer.flush())
            if message.type == "close":
                self._closing = True
                self._queue.put_nowait(_Close())
            else:
                self._queue.put_nowait(_Flushed())

    async def _start(self, message: StartMessage) -> None:
        if self._voice is not None:
            await self.send_error(
                "already_started", "The session has started; open a new socket for other settings."
            )
            return
        request = self._request("Hello.", message, output_format=message.format)
        try:
            plan = self.runtime.plan(request, self.client)  # checks voice, language, format and rate now
            encoder = make_encoder(plan.output_format, plan.sample_rate)
        except RequestError as exc:
            await self.send_problem(problem(exc))
            return
        try:
            self._release_slot = self.runtime.admit_client(self.client)
        except RateLimited as exc:
            await self.send_problem(problem(exc))
            await self.socket.close(1013)
            return
        self._voice = _Voice(message, plan.sample_rate, plan.voice_id, plan.language)
        self._encoder = encoder
        engine_limit = self.runtime.engine.max_segment_chars(plan.language)
        self._buffer = SentenceBuffer(engine_limit, ssml=message.text_type == "ssml")
        await self.send_event(
            {
                "type": "started",
                "format": plan.output_format,
                "content_type": encoder.content_type,
                "sample_rate": plan.sample_rate,
                "voice": plan.voice_id,
                "language": plan.language,
            }
        )
        header = encoder.header()
        if header:
            async with self._send_lock:
                await self.socket.send_bytes(header)

    async def _add_text(self, text: str) -> None:
        assert self._buffer is not None
        limit = self.runtime.settings.ws_max_pending_chars
        waiting = self._queued_chars + self._buffer.pending_chars
        if waiting + len(text) > limit:
            await self.send_error(
                "text_buffer_full",
                f"{waiting} characters are waiting to be spoken; the limit is {limit}. This text "
                f"({len(text)} characters) was not taken: send it again once speech has caught up.",
                param="text",
            )
            return
        self._enqueue_sentences(self._buffer.add(text))

    def _enqueue_sentences(self, sentences: list[str]) -> None:
        for text in sentences:
            self._queue.put_nowait(_Sentence(self._sentences, text))
            self._sentences += 1
            self._queued_chars += len(text)

    def _cancel(self) -> None:
        """Stop the sentence being spoken and drop what waits; the session goes on."""
        assert self._buffer is not None
        dropped_chars = self._buffer.clear()
        dropped = 0
        kept: list[_QueueItem] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, _Sentence):
                dropped += 1
                dropped_chars += len(item.text)
                self._queued_chars -= len(item.text)
            elif not isinstance(item, _Flushed):
                kept.append(item)
        if self._current is not None and not self._current.done():
            self._current.cancel()
        self._queue.put_nowait(_Cancelled(dropped, dropped_chars))
        for item in kept:
            self._queue.put_nowait(item)

    def shut_down(self) -> None:
        """The service is shutting down: the sentence being spoken may finish (until the grace
        ends), what waits is dropped, then an error event says so and the socket closes."""
        if self._shutting_down:
            return
        self._shutting_down = True
        dropped = 0
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, _Sentence):
                dropped += 1
                self._queued_chars -= len(item.text)
        self._queue.put_nowait(_ShutDown(dropped))

    # --- the speaker ---

    async def _speak_queue(self) -> None:
        while True:
            item = await self._queue.get()
            if isinstance(item, _Sentence):
                self._current = asyncio.create_task(self._speak(item))
                try:
                    await self._current
                except asyncio.CancelledError:
                    current_task = asyncio.current_task()
                    if current_task is not None and current_task.cancelling():
                        raise  # the session itself is ending
                finally:
                    self._current = None
                    self._queued_chars -= len(item.text)
            elif isinstance(item, _ShutDown):
                await self._end_for_shutdown(item)
                return
            elif isinstance(item, _Flushed):
                await self.send_event({"type": "flushed", "audio_offset": self.audio_offset})
            elif isinstance(item, _Cancelled):
                self._listener.dropped()
                await self.send_event(
                    {
                        "type": "cancelled",
                        "dropped_sentences": item.dropped_sentences,
                        "dropped_chars": item.dropped_chars,
                        "audio_offset": self.audio_offset,
                    }
                )
            else:
                await self._finish()
                return

    def _request(self, text: str, start: StartMessage, output_format: str = "pcm") -> SynthesisRequest:
        """One sentence's request: PCM at the session rate, which the session's encoder encodes."""
        ssml = start.text_type == "ssml"
        return SynthesisRequest(
            text=f"<speak>{text}</speak>" if ssml else text,
            language=start.language,
            voice=start.voice,
            params=start.params.generation_params(),
            output_format=output_format,
            sample_rate=self._voice.sample_rate if self._voice else start.sample_rate,
            ssml=ssml,
            volume_gain_db=start.volume_gain_db,
            # While earlier sentences still play, this one's prosody matters more than its start.
            opens_speech=self._listener.waiting(time.monotonic()),
        )

    async def _speak(self, sentence: _Sentence) -> None:
        assert self._voice is not None
        voice = self._voice
        try:
            audio = await self.runtime.start_speech(
                self._request(sentence.text, voice.message), self.client, door="websocket"
            )
        except ShuttingDown:
            self._cut = sentence
            self.shut_down()
            return
        except (RequestError, ServiceBusy) as exc:
            await self.send_problem(problem(exc), sentence=sentence.index, text=sentence.text)
            return
        self.characters += audio.plan.characters
        if self._samples and voice.sample_rate:
            # The pause a sentence (or a clause, for a cut made for length) would have in one text.
            pause_s = (
                self.runtime.settings.sentence_pause_ms / 1000.0
                if self._previous_ended_sentence
                else clause_pause_s(voice.message.params.generation_params().speed)
            )
            await self._send_audio(np.zeros(round(pause_s * voice.sample_rate), np.int16))
        self._previous_ended_sentence = ends_sentence_ignoring_tags(sentence.text)
        began = self.audio_offset
        await self.send_event(
            {
                "type": "sentence_started",
                "sentence": sentence.index,
                "text": sentence.text,
                "audio_offset": began,
            }
        )
        try:
            async for chunk in audio.chunks():
                await self._send_audio(np.frombuffer(chunk, np.int16))
        except ShuttingDown:  # cut at the end of the shutdown grace
            self._cut = sentence
            self.shut_down()
            return
        except (SynthesisFailed, DeadlineExceeded) as exc:
            told = problem(exc)
            await self.send_error(told.code, told.message, sentence=sentence.index, text=sentence.text)
            return
        for name, offset in audio.marks:
            await self.send_event({"type": "mark", "name": name, "audio_offset": round(began + offset, 4)})
        await self.send_event(
            {
                "type": "sentence_finished",
                "sentence": sentence.index,
                "audio_offset": self.audio_offset,
                "duration": round(self.audio_offset - began, 4),
            }
        )

    async def _end_for_shutdown(self, item: _ShutDown) -> None:
        event: dict[str, Any] = {
            "dropped_sentences": item.dropped_sentences,
            "audio_offset": self.audio_offset,
        }
        if self._cut is not None:
            event.update(sentence=self._cut.index, text=self._cut.text)
        await self.send_error("shutting_down", SESSION_CUT_MESSAGE, **event)
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await self.socket.close(SHUTTING_DOWN_CLOSE)

    async def _finish(self) -> None:
        tail = self._encoder.finish() if self._encoder is not None else b""
        if tail:
            async with self._send_lock:
                await self.socket.send_bytes(tail)
        await self.send_event(
            {"type": "done", "sentences": self._sentences, "audio_seconds": self.audio_offset}
        )
        if self.socket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await self.socket.close(1000)
