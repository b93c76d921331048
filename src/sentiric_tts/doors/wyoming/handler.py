"""One Wyoming connection: Home Assistant's TTS events in, audio events out.

    describe                                   -> info
    synthesize {text, voice}                   -> audio-start, audio-chunk..., audio-stop
    synthesize-start {voice}                   -> audio-start (at once), then as each sentence
      synthesize-chunk {text}...                  is complete, its audio-chunks
      synthesize {text}   (ignored: HA's copy for older servers)
      synthesize-stop                          -> ..., audio-stop, synthesize-stopped
    ping                                       -> pong

One reply at a time: a request that comes while the last one is still speaking waits for it.
Audio is PCM s16le mono at one rate for the whole reply (a stream's sentences share it: the
ContinuousSpeech of synthesis/continuous.py speaks each as soon as it is complete).

A failure is an `error` event (`text`: our message, `code`: our failure code) that ends its
reply: no audio-stop follows, and the rest of a failed stream (chunks, the copy, its stop) is
read and dropped. A bad event (not JSON, an unknown type, data or payload over the limit) gets
an error event too. Either way the connection then serves the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from sentiric_tts.doors.admission import Caller, admit_keyless
from sentiric_tts.doors.wyoming.framing import BadEvent, BoundedReader, read_event
from sentiric_tts.doors.wyoming.voices import describe, requested_voice
from sentiric_tts.failures import RequestError, ServiceFailure, problem
from sentiric_tts.observability.context import choose_request_id, request_id_var
from sentiric_tts.observability.record import stream_log_fields, write_access_line
from sentiric_tts.synthesis.continuous import (
    Audio,
    ContinuousSpeech,
    Finished,
    SentenceFailed,
    Stopped,
)
from sentiric_tts.synthesis.request import SynthesisRequest
from sentiric_tts.synthesis.stream import AudioStream

if TYPE_CHECKING:
    from sentiric_tts.runtime import Runtime

DOOR = "wyoming"
WIDTH = 2  # bytes per sample: s16le
CHANNELS = 1
SELECT_PROGRAM = "select-program"

log = logging.getLogger(__name__)
access_log = logging.getLogger("sentiric_tts.access")


@dataclass
class _Record:
    """One reply, as its log line and metrics see it."""

    event: str
    address: str
    request_id: str = field(default_factory=lambda: choose_request_id(None, None))
    started: float = field(default_factory=time.perf_counter)
    code: str = "ok"
    audio: AudioStream | None = None
    speech: ContinuousSpeech | None = None

    def write(self, runtime: Runtime) -> None:
        seconds = time.perf_counter() - self.started
        runtime.metrics.wyoming_requests.labels(self.event, self.code).inc()
        fields: dict[str, Any] = {
            "request_id": self.request_id,
            "door": DOOR,
            "event": self.event,
            "client": self.address,
            "status": self.code,
            "ms": round(seconds * 1000),
        }
        if self.audio is not None:
            fields.update(stream_log_fields(self.audio, seconds))
        elif self.speech is not None:
            speech = self.speech
            first = speech.first_audio_at
            fields.update(
                voice=speech.voice_id,
                language=speech.language,
                rate=speech.sample_rate,
                sentences=speech.sentences,
                chars=speech.characters,
                audio_s=speech.audio_offset,
                ttfa_ms=None if first is None else round((first - self.started) * 1000),
            )
        write_access_line(access_log, fields)


@dataclass
class _Stream:
    """Between synthesize-start and synthesize-stop."""

    speech: ContinuousSpeech | None
    """None: the stream failed at its start."""
    record: _Record
    failed: bool = False
    """An error event ended its reply: what the client still sends of it is dropped."""


class WyomingHandler(AsyncEventHandler):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        runtime: Runtime,
        handlers: set[WyomingHandler],
    ) -> None:
        super().__init__(reader, writer)
        self.runtime = runtime
        self.settings = runtime.settings.wyoming
        self.events = BoundedReader(reader, self.settings.max_event_bytes)
        peer = writer.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        self._handlers = handlers
        handlers.add(self)
        self._write_lock = asyncio.Lock()
        self._reply: asyncio.Task[None] | None = None
        self._stream: _Stream | None = None
        self._speech: ContinuousSpeech | None = None
        """The stream being spoken, open or ended by the client."""
        self._stopping = False

    # --- the connection ---

    @property
    def busy(self) -> bool:
        """A reply is being written with all its text in (an open stream waits for the client)."""
        return self._stream is None and self._reply is not None and not self._reply.done()

    @property
    def replying(self) -> bool:
        return self._reply is not None and not self._reply.done()

    async def run(self) -> None:
        """AsyncEventHandler.run, reading through BoundedReader: a bad event is answered and the
        connection goes on."""
        try:
            while not self._stopping:
                try:
                    event = await self._next_event()
                except BadEvent as exc:
                    self.runtime.metrics.wyoming_requests.labels("invalid", exc.code).inc()
                    await self._error(exc.code, exc.message)
                    if exc.fatal:
                        break
                    continue
                if event is None or not await self.handle_event(event):
                    break
            await self._end_of_input()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            await self.disconnect()
            self.writer.close()
            self._handlers.discard(self)

    async def _next_event(self) -> Event | None:
        """The next event; None at the end, or when the connection has been idle too long."""
        reading = asyncio.ensure_future(read_event(self.events))
        try:
            while True:
                done, _ = await asyncio.wait({reading}, timeout=self.settings.idle_timeout_seconds)
                if done:
                    return reading.result()
                if not self.busy:
                    log.info(
                        "Wyoming client %s idle for %g s: closing",
                        self.address,
                        self.settings.idle_timeout_seconds,
                    )
                    return None
        finally:
            if not reading.done():
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reading

    async def _end_of_input(self) -> None:
        """The client sent all it will: a reply it asked for is still written (it may read after
        closing its side); a stream it left open is dropped (by `disconnect`)."""
        if self._reply is not None and self._stream is None and not self._stopping:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reply

    async def disconnect(self) -> None:
        reply = self._reply
        if reply is not None and not reply.done():
            reply.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reply
        stream, self._stream = self._stream, None
        if stream is not None and stream.speech is not None:
            await stream.speech.aclose()

    async def stop(self) -> None:
        self._stopping = True
        await super().stop()

    def shut_down(self) -> None:
        """The service is shutting down: a stream speaks the sentence in progress (until the
        grace ends), then says so with an error event; a one-shot reply runs on until the grace
        ends (then the cut ends it with an error event)."""
        if self._speech is not None:
            self._speech.shut_down()

    # --- writing ---

    async def write_event(self, event: Event) -> None:
        async with self._write_lock:
            await super().write_event(event)

    async def _error(self, code: str, message: str) -> None:
        with contextlib.suppress(ConnectionError):
            await self.write_event(Error(text=message, code=code).event())

    async def _problem(self, exc: BaseException, record: _Record | None = None) -> None:
        told = problem(exc)
        if record is not None:
            record.code = told.code
        await self._error(told.code, told.message)

    # --- events ---

    async def handle_event(self, event: Event) -> bool:
        kind = event.type
        if Describe.is_type(kind):
            caller = Caller(f"addr:{self.address}", self.address, DOOR)
            access = self.runtime.library_access(caller.client)
            info = describe(self.runtime.pipeline.catalogue, access, self.runtime.engine.name)
            await self.write_event(info.event())
        elif Synthesize.is_type(kind):
            if self._stream is not None:
                return True  # Home Assistant's copy of a stream's text, for servers without streaming
            await self._await_reply()
            self._start_reply(self._speak_once, event.data, _Record("synthesize", self.address))
        elif SynthesizeStart.is_type(kind):
            await self._start_stream(event.data)
        elif SynthesizeChunk.is_type(kind):
            await self._stream_chunk(event.data)
        elif SynthesizeStop.is_type(kind):
            await self._stop_stream()
        elif Ping.is_type(kind):
            await self.write_event(Pong(text=event.data.get("text")).event())
        elif kind == SELECT_PROGRAM:
            pass  # there is one TTS program: every name selects it
        else:
            self.runtime.metrics.wyoming_requests.labels("invalid", "unknown_event").inc()
            await self._error(
                "unknown_event",
                f"Unknown event type {kind[:100]!r}: this server takes describe, synthesize, "
                "synthesize-start, synthesize-chunk, synthesize-stop and ping.",
            )
        return True

    async def _await_reply(self) -> None:
        if self._reply is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reply
            self._reply = None

    def _start_reply(self, speak: Any, *args: Any) -> None:
        record: _Record = args[-1]
        token = request_id_var.set(record.request_id)
        try:  # the task copies the context: its log lines carry the request id
            self._reply = asyncio.create_task(self._replying(speak, *args))
        finally:
            request_id_var.reset(token)

    async def _replying(self, speak: Any, *args: Any) -> None:
        record: _Record = args[-1]
        try:
            await speak(*args)
        except ServiceFailure as exc:
            await self._problem(exc, record)
        except ConnectionError:
            record.code = "client_gone"
        except asyncio.CancelledError:
            if record.code == "ok":
                record.code = "cancelled"
            raise
        except Exception as exc:  # a bug: the client hears of it, the connection goes on
            await self._problem(exc, record)
        finally:
            record.write(self.runtime)

    def _admit(self) -> Caller:
        return admit_keyless(self.runtime, self.address, DOOR)

    def _template(self, caller: Caller, data: dict[str, Any], text: str) -> SynthesisRequest:
        access = self.runtime.library_access(caller.client)
        voice, language = requested_voice(self.runtime.pipeline.catalogue, access, data.get("voice"))
        return SynthesisRequest(
            text=text,
            voice=voice,
            language=language,
            output_format="pcm",
            ssml=data.get("text_format") == "ssml",
        )

    # --- one-shot ---

    async def _speak_once(self, data: dict[str, Any], record: _Record) -> None:
        text = data.get("text")
        if not isinstance(text, str):
            raise RequestError("A synthesize event has 'text': the text to speak.", param="text")
        caller = self._admit()
        request = self._template(caller, data, text)
        audio = await self.runtime.open_speech(request, caller.client, DOOR)
        record.audio = audio
        try:
            rate = audio.plan.sample_rate
            await self.write_event(AudioStart(rate=rate, width=WIDTH, channels=CHANNELS).event())
            async with contextlib.aclosing(audio.chunks()) as chunks:
                async for chunk in chunks:
                    if chunk:
                        event = AudioChunk(rate=rate, width=WIDTH, channels=CHANNELS, audio=chunk).event()
                        await self.write_event(event)
            await self.write_event(AudioStop().event())
        finally:
            if audio.outcome == "pending":
                audio.cancel()  # the reply ended before its audio did: free the engine now

    # --- streaming ---

    async def _start_stream(self, data: dict[str, Any]) -> None:
        if self._stream is not None:
            await self._error(
                "invalid_event", "A stream is open already: send synthesize-stop before synthesize-start."
            )
            return
        await self._await_reply()
        record = _Record("synthesize-stream", self.address)
        token = request_id_var.set(record.request_id)
        try:
            caller = self._admit()
            template = self.runtime.for_client(self._template(caller, data, ""), caller.client)
            speech = self.runtime.pipeline.open_continuous(
                template, door=DOOR, max_pending_chars=self.runtime.settings.limits.max_text_chars
            )
            release = self.runtime.admit_client(caller.client)
        except ServiceFailure as exc:
            self._stream = _Stream(None, record, failed=True)
            await self._problem(exc, record)
            record.write(self.runtime)
            return
        finally:
            request_id_var.reset(token)
        stream = _Stream(speech, record)
        record.speech = speech
        self._stream = stream
        self._speech = speech
        self._start_reply(self._speak_stream, stream, release, record)

    async def _speak_stream(self, stream: _Stream, release: Any, record: _Record) -> None:
        speech = stream.speech
        assert speech is not None
        rate = speech.sample_rate
        try:
            await self.write_event(AudioStart(rate=rate, width=WIDTH, channels=CHANNELS).event())
            async with contextlib.aclosing(speech.events()) as events:
                async for item in events:
                    if isinstance(item, Audio):
                        if item.data:
                            chunk = AudioChunk(rate=rate, width=WIDTH, channels=CHANNELS, audio=item.data)
                            await self.write_event(chunk.event())
                    elif isinstance(item, SentenceFailed | Stopped):
                        stream.failed = True
                        await self._problem(item.error, record)
                        return
                    elif isinstance(item, Finished):
                        await self.write_event(AudioStop().event())
                        await self.write_event(SynthesizeStopped().event())
        except BaseException:
            stream.failed = True
            raise
        finally:
            release()
            if self._speech is speech:
                self._speech = None

    async def _stream_chunk(self, data: dict[str, Any]) -> None:
        stream = self._stream
        if stream is None:
            await self._error("not_started", "synthesize-chunk comes after synthesize-start.")
            return
        if stream.failed or stream.speech is None:
            return
        text = data.get("text")
        try:
            if not isinstance(text, str):
                raise RequestError("A synthesize-chunk event has 'text'.", param="text")
            await stream.speech.add_text(text)
        except RequestError as exc:
            await self._fail_stream(stream, exc)

    async def _fail_stream(self, stream: _Stream, exc: ServiceFailure) -> None:
        """An error ends the stream's reply: its speech stops, the client reads the error event."""
        stream.failed = True
        stream.record.code = problem(exc).code
        reply = self._reply
        if reply is not None and not reply.done():
            reply.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reply
        await self._error(stream.record.code, problem(exc).message)

    async def _stop_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            await self._error("not_started", "synthesize-stop comes after synthesize-start.")
            return
        if stream.failed or stream.speech is None:
            return
        await stream.speech.end()
