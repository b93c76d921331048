"""One /ws/tts session: the WebSocket protocol over a ContinuousSpeech (synthesis/continuous.py).

Two tasks share the socket. The reader takes the client's messages (start, text, flush, cancel,
close) and hands them to the session's ContinuousSpeech, which speaks each sentence as soon as it
is complete, as one continuous stream in the format the start message chose. The writer sends
what the speech makes as it comes: binary audio frames and JSON events.

Backpressure: the writer awaits each send and the speech waits on the writer, so a client that
does not read stops its speech, whose unread chunks then stop the engine job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from sentiric_tts.doors.websocket.messages import (
    BadMessage,
    ControlMessage,
    StartMessage,
    TextMessage,
    parse_message,
)
from sentiric_tts.failures import Problem, RateLimited, RequestError, problem
from sentiric_tts.observability.context import request_id_var
from sentiric_tts.observability.record import write_access_line
from sentiric_tts.runtime import Runtime
from sentiric_tts.synthesis.continuous import (
    Audio,
    Cancelled,
    ContinuousSpeech,
    Finished,
    Flushed,
    MarkReached,
    SentenceFailed,
    SentenceFinished,
    SentenceStarted,
    SpeechEnd,
    SpeechEvent,
    Stopped,
)
from sentiric_tts.synthesis.request import SynthesisRequest

access_log = logging.getLogger("sentiric_tts.access")

SESSION_CUT_MESSAGE = (
    "The service is shutting down; reconnect (to another instance) and send again what was not spoken."
)
SHUTTING_DOWN_CLOSE = 1012  # "service restart": clients may reconnect at once


class SpeechSession:
    def __init__(self, runtime: Runtime, socket: WebSocket, client: str) -> None:
        self.runtime = runtime
        self.socket = socket
        self.client = client
        self._send_lock = asyncio.Lock()
        self._speech: ContinuousSpeech | None = None
        # Set once the writer has something to write: the speech started, or the service is
        # shutting down before it did.
        self._writable = asyncio.Event()
        self._release_slot: Any = None
        self._closing = False
        self._shutting_down = False
        self.started_at = time.perf_counter()

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

    async def _send_bytes(self, data: bytes) -> None:
        async with self._send_lock:
            await self.socket.send_bytes(data)

    @property
    def audio_offset(self) -> float:
        return self._speech.audio_offset if self._speech is not None else 0.0

    # --- the session ---

    async def run(self) -> None:
        writer = asyncio.create_task(self._write())
        try:
            await self._read(writer)
        finally:
            if not writer.done():
                if not self._closing:
                    writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writer
            if self._speech is not None:
                await self._speech.aclose()
            if self._release_slot is not None:
                self._release_slot()
            self._log()

    def _log(self) -> None:
        speech = self._speech
        first_audio_at = speech.first_audio_at if speech is not None else None
        ttfa = None if first_audio_at is None else first_audio_at - self.started_at
        fields = {
            "request_id": request_id_var.get(),
            "door": "websocket",
            "route": "/ws/tts",
            "sentences": speech.sentences if speech is not None else 0,
            "chars": speech.characters if speech is not None else 0,
            "audio_s": self.audio_offset,
            "ttfa_ms": None if ttfa is None else round(ttfa * 1000),
            "ms": round((time.perf_counter() - self.started_at) * 1000),
        }
        write_access_line(access_log, fields)

    async def _read(self, writer: asyncio.Task[None]) -> None:
        idle_s = self.runtime.settings.websocket.idle_timeout_seconds
        while not writer.done():
            receive = asyncio.ensure_future(self.socket.receive())
            done, _ = await asyncio.wait(
                {receive, writer}, timeout=idle_s, return_when=asyncio.FIRST_COMPLETED
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
        speech = self._speech
        if speech is None:
            await self.send_error(
                "not_started", "Send a 'start' message first (voice, language, format, ...)."
            )
            return
        if self._closing:
            await self.send_error("closing", "The session is closing: no more text is taken after 'close'.")
            return
        if isinstance(message, TextMessage):
            try:
                await speech.add_text(message.text)
            except RequestError as exc:  # text_buffer_full
                told = problem(exc)
                await self.send_error(told.code, told.message, param=told.param)
        elif isinstance(message, ControlMessage) and message.type == "cancel":
            await speech.cancel()
        elif isinstance(message, ControlMessage) and message.type == "close":
            self._closing = True
            await speech.end()
        else:
            await speech.flush()

    async def _start(self, message: StartMessage) -> None:
        if self._speech is not None:
            await self.send_error(
                "already_started", "The session has started; open a new socket for other settings."
            )
            return
        template = SynthesisRequest(
            text="",
            language=message.language,
            voice=message.voice,
            params=message.params.generation_params(),
            output_format=message.format,
            sample_rate=message.sample_rate,
            ssml=message.text_type == "ssml",
            volume_gain_db=message.volume_gain_db,
        )
        try:
            # Checks voice, language, format and rate now.
            speech = self.runtime.pipeline.open_continuous(
                self.runtime.for_client(template, self.client),
                door="websocket",
                max_pending_chars=self.runtime.settings.websocket.max_pending_chars,
            )
        except RequestError as exc:
            await self.send_problem(problem(exc))
            return
        try:
            self._release_slot = self.runtime.admit_client(self.client)
        except RateLimited as exc:
            await self.send_problem(problem(exc))
            await self.socket.close(1013)
            return
        if self._shutting_down:
            return  # the writer says so and closes
        self._speech = speech
        await self.send_event(
            {
                "type": "started",
                "format": speech.output_format,
                "content_type": speech.content_type,
                "sample_rate": speech.sample_rate,
                "voice": speech.voice_id,
                "language": speech.language,
            }
        )
        self._writable.set()

    def shut_down(self) -> None:
        """The service is shutting down: the sentence being spoken may finish (until the grace
        ends), what waits is dropped, then an error event says so and the socket closes."""
        if self._shutting_down:
            return
        self._shutting_down = True
        if self._speech is not None:
            self._speech.shut_down()
        self._writable.set()

    # --- the writer ---

    async def _write(self) -> None:
        await self._writable.wait()
        speech = self._speech
        if speech is None:  # shut down before the start
            await self._end_for_shutdown(None)
            return
        async with contextlib.aclosing(speech.events()) as events:
            async for event in events:
                await self._send(event)

    async def _send(self, event: SpeechEvent | SpeechEnd) -> None:
        if isinstance(event, Audio):
            await self._send_bytes(event.data)
        elif isinstance(event, SentenceStarted):
            await self.send_event(
                {
                    "type": "sentence_started",
                    "sentence": event.sentence,
                    "text": event.text,
                    "audio_offset": event.audio_offset,
                }
            )
        elif isinstance(event, MarkReached):
            await self.send_event({"type": "mark", "name": event.name, "audio_offset": event.audio_offset})
        elif isinstance(event, SentenceFinished):
            await self.send_event(
                {
                    "type": "sentence_finished",
                    "sentence": event.sentence,
                    "audio_offset": event.audio_offset,
                    "duration": event.duration,
                }
            )
        elif isinstance(event, SentenceFailed):
            told = problem(event.error)
            if event.began:  # the sentence's audio had started: what failed, not what to change
                await self.send_error(told.code, told.message, sentence=event.sentence, text=event.text)
            else:
                await self.send_problem(told, sentence=event.sentence, text=event.text)
        elif isinstance(event, Flushed):
            await self.send_event({"type": "flushed", "audio_offset": event.audio_offset})
        elif isinstance(event, Cancelled):
            await self.send_event(
                {
                    "type": "cancelled",
                    "dropped_sentences": event.dropped_sentences,
                    "dropped_chars": event.dropped_chars,
                    "audio_offset": event.audio_offset,
                }
            )
        elif isinstance(event, Stopped):
            await self._end_for_shutdown(event)
        else:
            await self._finish(event)

    async def _end_for_shutdown(self, stopped: Stopped | None) -> None:
        event: dict[str, Any] = {
            "dropped_sentences": stopped.dropped_sentences if stopped is not None else 0,
            "audio_offset": self.audio_offset,
        }
        if stopped is not None and stopped.cut is not None:
            event.update(sentence=stopped.cut.index, text=stopped.cut.text)
        await self.send_error("shutting_down", SESSION_CUT_MESSAGE, **event)
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await self.socket.close(SHUTTING_DOWN_CLOSE)

    async def _finish(self, finished: Finished) -> None:
        await self.send_event(
            {"type": "done", "sentences": finished.sentences, "audio_seconds": finished.audio_seconds}
        )
        if self.socket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await self.socket.close(1000)
