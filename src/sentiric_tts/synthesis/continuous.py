"""Many sentences spoken as one continuous stream, for doors whose text arrives in pieces (LLM
tokens): the WebSocket door, Home Assistant's Wyoming streaming.

Text comes in increments (`add_text`); a SentenceBuffer (incremental.py) releases each sentence
as soon as it is complete, and a speaker task speaks the released sentences in order, each a
request of its own through the one pipeline (planned, admitted, rendered like any other), as PCM
at the session's one rate, encoded by one encoder for the whole session. Between two sentences
goes the silence the planner puts between them within one text (`SynthesisPlanner.pause_after`).

The consumer reads `events()` (audio and what happens to each sentence, in order) or just
`audio()`. The speaker waits on the consumer at every item, so a consumer that does not read
stops the speaker, whose unread chunks then stop the engine job (the scheduler's bounded buffer).

    speech = pipeline.open_continuous(template, door="wyoming")   # RequestError: bad template
    async with speech:
        ...  await speech.add_text(piece) ... await speech.end()     # from the protocol's reader
        async for pcm in speech.audio(): ...                          # from its writer
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from sentiric_tts.audio.encoders import make_encoder
from sentiric_tts.failures import SHUTTING_DOWN_MESSAGE, RequestError, ServiceFailure, ShuttingDown
from sentiric_tts.synthesis.incremental import SentenceBuffer
from sentiric_tts.synthesis.planning import SynthesisPlanner
from sentiric_tts.synthesis.renderer import Renderer
from sentiric_tts.synthesis.request import SynthesisRequest
from sentiric_tts.synthesis.stream import AudioStream

# --- what the consumer reads (offsets: seconds of session audio before the point, to 0.1 ms) ---


@dataclass(frozen=True)
class Sentence:
    """A piece of text released to be spoken: `index` counts them from 0 in the session."""

    index: int
    text: str


@dataclass(frozen=True)
class Audio:
    """Encoded session audio; `samples` of it at the session rate (0 for a header or tail)."""

    data: bytes
    samples: int


@dataclass(frozen=True)
class SentenceStarted:
    sentence: int
    text: str
    audio_offset: float


@dataclass(frozen=True)
class MarkReached:
    """An SSML <mark/> of a sentence, reached at `audio_offset`."""

    name: str
    audio_offset: float


@dataclass(frozen=True)
class SentenceFinished:
    sentence: int
    audio_offset: float
    duration: float


@dataclass(frozen=True)
class SentenceFailed:
    """A sentence that could not be spoken; the session goes on with the next one.

    `began`: the failure came after its SentenceStarted (some of its audio may have gone out);
    else it was refused before any (its request was invalid, or the service busy)."""

    sentence: int
    text: str
    error: ServiceFailure
    began: bool


@dataclass(frozen=True)
class Flushed:
    """Everything before the flush has been spoken."""

    audio_offset: float


@dataclass(frozen=True)
class Cancelled:
    """The sentence being spoken was stopped and what waited was dropped; the session goes on."""

    dropped_sentences: int
    dropped_chars: int
    audio_offset: float


@dataclass(frozen=True)
class Finished:
    """The last event after `end()`: every sentence spoken, the encoder's tail sent."""

    sentences: int
    audio_seconds: float


@dataclass(frozen=True)
class Stopped:
    """The last event when the service shut down: the sentence being spoken (`cut`, if the
    shutdown grace ended it) is incomplete and those that waited were dropped."""

    error: ShuttingDown
    dropped_sentences: int
    cut: Sentence | None
    audio_offset: float


SpeechEvent = Audio | SentenceStarted | MarkReached | SentenceFinished | SentenceFailed | Flushed | Cancelled
SpeechEnd = Finished | Stopped


# --- the speaker's queue ---


@dataclass(frozen=True)
class _Flush:
    pass


@dataclass(frozen=True)
class _Cancel:
    dropped_sentences: int
    dropped_chars: int


@dataclass(frozen=True)
class _End:
    pass


@dataclass(frozen=True)
class _ShutDown:
    dropped_sentences: int


_Queued = Sentence | _Flush | _Cancel | _End | _ShutDown


@dataclass(frozen=True)
class _Failed:
    """The speaker itself failed (a bug): raised to the consumer."""

    error: BaseException


@dataclass(frozen=True)
class _Stop:
    """After the last event."""


_Out = SpeechEvent | SpeechEnd | _Failed | _Stop


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


class ContinuousSpeech:
    """One continuous stream of speech from text that arrives in pieces (see the module doc).

    The template fixes, for the whole session, what every sentence's request has but its text:
    voice, language, generation parameters, output format and rate (one of each), SSML or not,
    gain and the caller's library access. It is checked here: RequestError as for any request.
    """

    def __init__(
        self,
        planner: SynthesisPlanner,
        renderer: Renderer,
        template: SynthesisRequest,
        *,
        door: str,
        max_pending_chars: int | None = None,
    ) -> None:
        self._planner = planner
        self._renderer = renderer
        self._door = door
        self._ssml = bool(template.ssml)
        plan = planner.plan(dataclasses.replace(template, text=self._request_text("Hello."), ssml=self._ssml))
        self._encoder = make_encoder(plan.output_format, plan.sample_rate)
        self.output_format = plan.output_format
        self.content_type = self._encoder.content_type
        self.sample_rate = plan.sample_rate
        self.voice_id = plan.voice_id
        self.language = plan.language
        self._template = dataclasses.replace(
            template, output_format="pcm", sample_rate=plan.sample_rate, ssml=self._ssml
        )
        self._max_pending_chars = max_pending_chars
        self._buffer = SentenceBuffer(planner.engine.max_segment_chars(plan.language), ssml=self._ssml)
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue()
        # One item at a time to the consumer: the speaker waits while it has not taken the last.
        self._out: asyncio.Queue[_Out] = asyncio.Queue(maxsize=1)
        self._speaker: asyncio.Task[None] | None = None
        self._current: asyncio.Task[None] | None = None
        self._ending = False
        self._shutting_down = False
        self._cut: Sentence | None = None
        self._stopped_by: ShuttingDown | None = None
        self._queued_chars = 0
        self._samples = 0  # session audio made, at the session rate (pauses included)
        self._last_text: str | None = None  # the sentence spoken last, for the pause after it
        self._listener = ListenerClock()
        self.sentences = 0
        """Sentences released so far (spoken, failed, dropped or waiting)."""
        self.characters = 0
        """Characters of the sentences whose speech was admitted."""
        self.first_audio_at: float | None = None
        """time.perf_counter() when the first audio (beyond a header) was made."""

    # --- the producer's side ---

    @property
    def audio_offset(self) -> float:
        """Seconds of session audio so far, to 0.1 ms."""
        return round(self._samples / self.sample_rate, 4)

    @property
    def ending(self) -> bool:
        """`end()` was called: no more text is taken."""
        return self._ending

    async def add_text(self, text: str) -> None:
        """Append text; each sentence it completes is queued to be spoken at once.

        RequestError (code text_buffer_full) when more than `max_pending_chars` would wait to be
        spoken: the text is not taken, and may be sent again once speech has caught up."""
        if self._ending:
            raise RequestError("The speech has ended: no more text is taken.", param="text", code="closing")
        limit = self._max_pending_chars
        waiting = self._queued_chars + self._buffer.pending_chars
        if limit is not None and waiting + len(text) > limit:
            raise RequestError(
                f"{waiting} characters are waiting to be spoken; the limit is {limit}. This text "
                f"({len(text)} characters) was not taken: send it again once speech has caught up.",
                param="text",
                code="text_buffer_full",
            )
        self._enqueue(self._buffer.add(text))

    async def flush(self) -> None:
        """Speak what is buffered, complete sentence or not; a Flushed event follows it."""
        self._enqueue(self._buffer.flush())
        self._queue.put_nowait(_Flush())

    async def end(self) -> None:
        """No more text: what is buffered is spoken, then the encoder's tail and Finished."""
        if self._ending:
            return
        self._enqueue(self._buffer.flush())
        self._ending = True
        self._queue.put_nowait(_End())

    async def cancel(self) -> None:
        """Stop the sentence being spoken and drop what waits (buffered text, queued sentences,
        pending flushes); a Cancelled event says what was dropped. The session goes on."""
        dropped_chars = self._buffer.clear()
        dropped = 0
        kept: list[_Queued] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, Sentence):
                dropped += 1
                dropped_chars += len(item.text)
                self._queued_chars -= len(item.text)
            elif not isinstance(item, _Flush):
                kept.append(item)
        if self._current is not None and not self._current.done():
            self._current.cancel()
        self._queue.put_nowait(_Cancel(dropped, dropped_chars))
        for item in kept:
            self._queue.put_nowait(item)

    def shut_down(self) -> None:
        """The service is shutting down: the sentence being spoken may finish (until the grace
        ends), what waits is dropped, then a Stopped event ends the session. Text that arrives
        afterwards is not spoken."""
        if self._shutting_down:
            return
        self._shutting_down = True
        dropped = 0
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, Sentence):
                dropped += 1
                self._queued_chars -= len(item.text)
        self._queue.put_nowait(_ShutDown(dropped))

    def _enqueue(self, sentences: list[str]) -> None:
        for text in sentences:
            self._queue.put_nowait(Sentence(self.sentences, text))
            self.sentences += 1
            self._queued_chars += len(text)

    # --- the consumer's side ---

    async def events(self) -> AsyncIterator[SpeechEvent | SpeechEnd]:
        """Everything the session makes, in order: the encoder's header, then per sentence the
        pause before it, SentenceStarted, its Audio and MarkReached, SentenceFinished (or
        SentenceFailed); Flushed and Cancelled where they fall; Finished or Stopped last.
        Leaving the iteration early stops the speech (as `aclose`). One consumer per session."""
        if self._speaker is not None:
            raise RuntimeError("a continuous speech has one consumer")
        self._speaker = asyncio.create_task(self._speak_queue())
        try:
            while True:
                item = await self._out.get()
                if isinstance(item, _Stop):
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            await self.aclose()

    async def audio(self) -> AsyncIterator[bytes]:
        """The session's encoded audio only, header first. A sentence's failure, or the
        service's shutdown, is raised (a ServiceFailure) and ends the speech."""
        async with contextlib.aclosing(self.events()) as events:
            async for event in events:
                if isinstance(event, Audio):
                    yield event.data
                elif isinstance(event, SentenceFailed | Stopped):
                    raise event.error

    async def aclose(self) -> None:
        """Stop speaking now (the consumer is gone): the sentence in progress and its engine
        work are cancelled. Safe to call more than once."""
        speaker = self._speaker
        if speaker is not None and not speaker.done():
            speaker.cancel()
            await asyncio.wait({speaker})

    async def __aenter__(self) -> ContinuousSpeech:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- the speaker ---

    async def _emit(self, event: _Out) -> None:
        await self._out.put(event)

    async def _speak_queue(self) -> None:
        try:
            header = self._encoder.header()
            if header:
                await self._emit(Audio(header, 0))
            while (end := await self._next_queued()) is None:
                pass
            await self._emit(end)
            await self._emit(_Stop())
        except Exception as exc:  # a bug: the consumer hears of it rather than waiting for ever
            await self._emit(_Failed(exc))

    async def _next_queued(self) -> Finished | Stopped | None:
        """Handle the next queued item; the last event once the session is over."""
        item = await self._queue.get()
        if isinstance(item, Sentence):
            self._current = asyncio.create_task(self._speak(item))
            try:
                await self._current
            except asyncio.CancelledError:
                speaker = asyncio.current_task()
                if speaker is not None and speaker.cancelling():
                    raise  # the session itself is ending
            finally:
                self._current = None
                self._queued_chars -= len(item.text)
        elif isinstance(item, _Flush):
            await self._emit(Flushed(self.audio_offset))
        elif isinstance(item, _Cancel):
            self._listener.dropped()
            await self._emit(Cancelled(item.dropped_sentences, item.dropped_chars, self.audio_offset))
        elif isinstance(item, _ShutDown):
            error = self._stopped_by or ShuttingDown(
                SHUTTING_DOWN_MESSAGE, self._renderer.scheduler.retry_after_s
            )
            return Stopped(error, item.dropped_sentences, self._cut, self.audio_offset)
        else:
            tail = self._encoder.finish()
            if tail:
                await self._emit(Audio(tail, 0))
            return Finished(self.sentences, self.audio_offset)
        return None

    def _request_text(self, text: str) -> str:
        return f"<speak>{text}</speak>" if self._ssml else text

    def _request(self, text: str) -> SynthesisRequest:
        """One sentence's request: PCM at the session rate, which the session's encoder encodes."""
        return dataclasses.replace(
            self._template,
            text=self._request_text(text),
            # While earlier sentences still play, this one's prosody matters more than its start.
            opens_speech=self._listener.waiting(time.monotonic()),
        )

    async def _send_audio(self, pcm16: np.ndarray) -> None:
        data = self._encoder.encode(pcm16)
        self._samples += pcm16.size
        self._listener.sent(pcm16.size / self.sample_rate, time.monotonic())
        if data:
            if self.first_audio_at is None:
                self.first_audio_at = time.perf_counter()
            await self._emit(Audio(data, pcm16.size))

    def _cut_short(self, sentence: Sentence, error: ShuttingDown) -> None:
        self._cut, self._stopped_by = sentence, error
        self.shut_down()

    async def _speak(self, sentence: Sentence) -> None:
        try:
            plan = await self._planner.prepare(self._request(sentence.text))
            stream = self._renderer.open_stream(plan, door=self._door)
        except ShuttingDown as exc:
            self._cut_short(sentence, exc)
            return
        except ServiceFailure as exc:
            await self._emit(SentenceFailed(sentence.index, sentence.text, exc, began=False))
            return
        try:
            await self._speak_stream(sentence, stream)
        finally:
            stream.cancel()  # a no-op once it has ended; else its engine work stops

    async def _speak_stream(self, sentence: Sentence, stream: AudioStream) -> None:
        self.characters += stream.plan.characters
        if self._samples and self._last_text is not None:
            pause_s = self._planner.pause_after(self._last_text, self._template.params.speed)
            await self._send_audio(np.zeros(round(pause_s * self.sample_rate), np.int16))
        self._last_text = sentence.text
        started = SentenceStarted(sentence.index, sentence.text, self.audio_offset)
        await self._emit(started)
        try:
            async with contextlib.aclosing(stream.chunks()) as chunks:
                async for chunk in chunks:
                    await self._send_audio(np.frombuffer(chunk, np.int16))
        except ShuttingDown as exc:  # cut at the end of the shutdown grace
            self._cut_short(sentence, exc)
            return
        except ServiceFailure as exc:
            await self._emit(SentenceFailed(sentence.index, sentence.text, exc, began=True))
            return
        for name, offset in stream.marks:
            await self._emit(MarkReached(name, round(started.audio_offset + offset, 4)))
        await self._emit(
            SentenceFinished(
                sentence.index, self.audio_offset, round(self.audio_offset - started.audio_offset, 4)
            )
        )
