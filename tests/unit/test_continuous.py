"""Continuous speech (synthesis/continuous.py) on the fake engine: text in pieces, each sentence
spoken once complete, one stream at one rate whose pauses are the pipeline's own, flush, cancel,
failures, shutdown, and a consumer that leaves."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest

from sentiric_tts.engines.base import GenerationParams
from sentiric_tts.failures import RequestError, ShuttingDown, SynthesisFailed
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
from tests.support.fake_engine import SAMPLE_RATE, FakeEngine
from tests.support.fake_runtime import eventually, fake_runtime, pcm, streamed_pcm, zero_runs

RATE = SAMPLE_RATE
SENTENCE_PAUSE = round(0.2 * RATE)  # fake_settings keeps TTS_SENTENCE_PAUSE_MS=200

Event = SpeechEvent | SpeechEnd
E = TypeVar("E", bound=Event)


def open_speech(runtime: Runtime, limit: int | None = None, **fields: object) -> ContinuousSpeech:
    """A speech in raw PCM (unless `fields` say otherwise) on the fake runtime."""
    template = SynthesisRequest(**{"text": "", "output_format": "pcm", **fields})  # type: ignore[arg-type]
    return runtime.pipeline.open_continuous(template, door="test", max_pending_chars=limit)


class Consumer:
    """Reads a speech's events in a task, as a door's writer does."""

    def __init__(self, speech: ContinuousSpeech) -> None:
        self.events: list[Event] = []
        self.task = asyncio.create_task(self._read(speech))

    async def _read(self, speech: ContinuousSpeech) -> None:
        async for event in speech.events():
            self.events.append(event)

    def of(self, kind: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, kind)]

    async def until(self, kind: type, count: int = 1) -> None:
        await eventually(lambda: len(self.of(kind)) >= count)

    def audio(self) -> np.ndarray:
        return pcm(b"".join(event.data for event in self.events if isinstance(event, Audio)))

    async def done(self) -> list[Event]:
        await asyncio.wait_for(self.task, 10.0)
        return self.events


def speak(
    runtime: Runtime,
    pieces: list[str],
    scenario: Callable[[ContinuousSpeech, Consumer], Awaitable[None]] | None = None,
    **fields: object,
) -> Consumer:
    """Open a speech, feed it `pieces`, run `scenario` (if any), end it and read it to its end."""

    async def main() -> Consumer:
        async with open_speech(runtime, **fields) as speech:
            consumer = Consumer(speech)
            for piece in pieces:
                await speech.add_text(piece)
            if scenario is not None:
                await scenario(speech, consumer)
            await speech.end()
            await consumer.done()
            return consumer

    return asyncio.run(main())


def whole(runtime: Runtime, text: str, **fields: object) -> np.ndarray:
    _, audio, _ = asyncio.run(streamed_pcm(runtime, SynthesisRequest(text=text, **fields)))  # type: ignore[arg-type]
    return audio


def test_a_sentence_is_spoken_as_soon_as_it_is_complete(runtime: Runtime, engine: FakeEngine) -> None:
    async def rest(speech: ContinuousSpeech, consumer: Consumer) -> None:
        await consumer.until(SentenceFinished)
        assert engine.texts() == ["Hello there."]  # before the rest of the text arrived
        for piece in [" can I", " help?"]:
            await speech.add_text(piece)

    consumer = speak(runtime, ["Hel", "lo the", "re. How"], rest)
    assert engine.texts() == ["Hello there.", "How can I help?"]
    first, second = (engine.expected_samples(text) for text in engine.texts())
    kinds = [type(event).__name__ for event in consumer.events if not isinstance(event, Audio)]
    assert kinds == [
        "SentenceStarted",
        "SentenceFinished",
        "SentenceStarted",
        "SentenceFinished",
        "Finished",
    ]
    started = consumer.of(SentenceStarted)
    assert started[0] == SentenceStarted(0, "Hello there.", 0.0)
    assert started[1] == SentenceStarted(1, "How can I help?", round((first + SENTENCE_PAUSE) / RATE, 4))
    assert consumer.events[-1] == Finished(2, round((first + SENTENCE_PAUSE + second) / RATE, 4))


@pytest.mark.parametrize("speed", [1.0, 2.0])
def test_the_pauses_between_sentences_are_those_of_the_same_text_in_one_request(
    tmp_path: Path, speed: float
) -> None:
    # Sentence ends, and a sentence cut for length (a comma's pause, shorter when faster).
    text = "One two three. Four five six! Good morning to you, and welcome to the show. Seven?"
    with fake_runtime(tmp_path, FakeEngine(max_chars=40)) as (runtime, engine):
        params = GenerationParams(speed=speed)
        tokens = [word + " " for word in text.split()]
        continuous = speak(runtime, tokens, params=params).audio()
        pieces = engine.texts()
        engine.forget()
        one_request = whole(runtime, text, params=params)
        assert engine.texts() == pieces  # the same segments
        assert zero_runs(continuous) == zero_runs(one_request)
        assert continuous.size == one_request.size
        np.testing.assert_array_equal(continuous, one_request)


def test_one_rate_and_format_for_the_whole_stream(runtime: Runtime, engine: FakeEngine) -> None:
    consumer = speak(runtime, ["One two three. Four five six. "], sample_rate=16000, voice="fake-high")
    audio = consumer.audio()
    sentences = [engine.expected_samples(text) * 16000 // RATE for text in engine.texts()]
    assert audio.size == sum(sentences) + round(0.2 * 16000)
    assert zero_runs(audio) == [round(0.2 * 16000)]
    assert {call.voice_id for call in engine.calls} == {"fake-high"}

    speech = asyncio.run(_opened(runtime, output_format="wav", sample_rate=8000))
    assert (speech.output_format, speech.sample_rate, speech.content_type) == ("wav", 8000, "audio/wav")


async def _opened(runtime: Runtime, **fields: object) -> ContinuousSpeech:
    return runtime.pipeline.open_continuous(SynthesisRequest(text="", **fields), door="test")  # type: ignore[arg-type]


def test_a_wav_stream_has_one_header_then_every_sentence(runtime: Runtime, engine: FakeEngine) -> None:
    consumer = speak(runtime, ["One. Two."], output_format="wav", sample_rate=8000)
    data = b"".join(event.data for event in consumer.events if isinstance(event, Audio))
    assert data.startswith(b"RIFF") and data.count(b"RIFF") == 1
    samples = sum(engine.expected_samples(text) for text in engine.texts()) * 8000 // RATE + round(0.2 * 8000)
    assert len(data) - (data.index(b"data") + 8) == samples * 2


def test_flush_speaks_what_is_buffered_and_says_when_it_is_out(runtime: Runtime, engine: FakeEngine) -> None:
    async def flush(speech: ContinuousSpeech, consumer: Consumer) -> None:
        await speech.flush()
        await consumer.until(Flushed)
        heard = engine.expected_samples("No ending here")
        assert consumer.of(Flushed) == [Flushed(round(heard / RATE, 4))]
        assert consumer.audio().size == heard  # all of it out before the event
        await speech.add_text("And more")

    consumer = speak(runtime, ["No ending here"], flush)
    assert engine.texts() == ["No ending here", "And more"]
    # A piece flushed without a sentence end is followed by the pause a comma would have.
    assert zero_runs(consumer.audio()) == [round(0.12 * RATE)]


def test_cancel_stops_the_sentence_mid_way_and_the_speech_goes_on(
    runtime: Runtime, engine: FakeEngine
) -> None:
    two = "Two is a sentence of several chunks of audio."
    gate = engine.hold("Two is", after_chunks=1)

    async def cancel(speech: ContinuousSpeech, consumer: Consumer) -> None:
        await asyncio.to_thread(engine.wait_held, "Two is")
        await consumer.until(SentenceStarted, 2)
        await speech.cancel()
        await consumer.until(Cancelled)
        (cancelled,) = consumer.of(Cancelled)
        # "Three." and "Four." waited to be spoken, "Fi" in the buffer.
        assert isinstance(cancelled, Cancelled)
        assert (cancelled.dropped_sentences, cancelled.dropped_chars) == (2, len("Three.Four.Fi"))
        assert cancelled.audio_offset == round(consumer.audio().size / RATE, 4)
        gate.set()
        await speech.add_text("Five.")

    consumer = speak(runtime, [f"One. {two} Three. Four. Fi"], cancel)
    assert engine.texts() == ["One.", two, "Five."]
    assert engine.wait_until(lambda fake: fake.calls[1].outcome == "closed")  # not run for nobody
    assert [event.sentence for event in consumer.of(SentenceFinished)] == [0, 4]
    (cancelled,) = consumer.of(Cancelled)
    expected = round(cancelled.audio_offset * RATE) + SENTENCE_PAUSE + engine.expected_samples("Five.")
    assert consumer.audio().size == expected
    assert consumer.events[-1] == Finished(5, round(expected / RATE, 4))


def test_an_engine_failure_fails_its_sentence_only(runtime: Runtime, engine: FakeEngine) -> None:
    engine.fail_on("Broken", after_chunks=1)
    consumer = speak(runtime, ["Fine one. Broken one, which is long enough. Fine two."])
    (failed,) = consumer.of(SentenceFailed)
    assert (failed.sentence, failed.text, failed.began) == (1, "Broken one, which is long enough.", True)
    assert isinstance(failed.error, SynthesisFailed)
    assert [event.sentence for event in consumer.of(SentenceFinished)] == [0, 2]
    assert isinstance(consumer.events[-1], Finished)


def test_a_sentence_refused_before_its_audio_fails_alone(runtime: Runtime, engine: FakeEngine) -> None:
    consumer = speak(runtime, ["Fine. <break time='99s'/>Not this one. Fine again."], ssml=True)
    (failed,) = consumer.of(SentenceFailed)
    assert not failed.began and isinstance(failed.error, RequestError)
    assert failed.error.code == "invalid_ssml"  # a break over 10 s
    assert len(consumer.of(SentenceFinished)) == 2


def test_audio_alone_raises_the_first_failure(runtime: Runtime, engine: FakeEngine) -> None:
    engine.fail_on("Broken", after_chunks=1)

    async def main() -> list[bytes]:
        received: list[bytes] = []
        async with open_speech(runtime) as speech:
            await speech.add_text("Fine one. Broken one, which is long enough. Never spoken.")
            await speech.end()
            with pytest.raises(SynthesisFailed):
                async for data in speech.audio():
                    received.append(data)
        return received

    received = asyncio.run(main())
    assert pcm(b"".join(received)).size >= engine.expected_samples("Fine one.")


def test_ssml_marks_are_at_their_offset_in_the_stream(runtime: Runtime, engine: FakeEngine) -> None:
    pieces = ["Hello there. ", 'Alpha <mark name="inside"/>', "beta gamma. ", "Done."]
    consumer = speak(runtime, pieces, ssml=True)
    assert engine.texts() == ["Hello there.", "Alpha", "beta gamma.", "Done."]
    started = consumer.of(SentenceStarted)
    (mark,) = consumer.of(MarkReached)
    assert mark == MarkReached(
        "inside", round(started[1].audio_offset + engine.expected_samples("Alpha") / RATE, 4)
    )


def test_an_invalid_template_is_refused_at_open(runtime: Runtime) -> None:
    for fields, code in [
        ({"voice": "nobody"}, "unknown_voice"),
        ({"output_format": "wma"}, "unsupported_format"),
        ({"sample_rate": 12345}, "unsupported_sample_rate"),
        ({"language": "fr"}, "unsupported_language"),
    ]:
        with pytest.raises(RequestError) as refused:
            asyncio.run(_opened(runtime, **fields))
        assert refused.value.code == code


def test_text_beyond_the_pending_limit_is_refused_not_lost(runtime: Runtime, engine: FakeEngine) -> None:
    gate = engine.hold("First")

    async def main() -> Consumer:
        async with open_speech(runtime, limit=100) as speech:
            consumer = Consumer(speech)
            await speech.add_text("First sentence waits. ")
            with pytest.raises(RequestError) as refused:
                await speech.add_text("word " * 30)
            assert refused.value.code == "text_buffer_full"
            gate.set()
            await speech.add_text("Short.")
            await speech.end()
            with pytest.raises(RequestError):
                await speech.add_text("After the end.")
            await consumer.done()
            return consumer

    consumer = asyncio.run(main())
    assert engine.texts() == ["First sentence waits.", "Short."]
    (finished,) = consumer.of(Finished)
    assert finished.sentences == 2


def test_a_shutdown_lets_the_sentence_finish_and_drops_what_waits(
    runtime: Runtime, engine: FakeEngine
) -> None:
    gate = engine.hold("First", after_chunks=1)

    async def main() -> Consumer:
        async with open_speech(runtime) as speech:
            consumer = Consumer(speech)
            await speech.add_text("First sentence. Second. Third. ")
            await asyncio.to_thread(engine.wait_held, "First")
            speech.shut_down()
            gate.set()
            await consumer.done()
            return consumer

    consumer = asyncio.run(main())
    assert engine.texts() == ["First sentence."]
    stopped = consumer.events[-1]
    assert isinstance(stopped, Stopped) and isinstance(stopped.error, ShuttingDown)
    assert (stopped.dropped_sentences, stopped.cut) == (2, None)
    assert consumer.of(SentenceFinished) and stopped.audio_offset == round(consumer.audio().size / RATE, 4)


def test_a_consumer_that_leaves_stops_the_engine_work(runtime: Runtime, engine: FakeEngine) -> None:
    gate = engine.hold("Long", after_chunks=1)

    async def main() -> None:
        async with open_speech(runtime) as speech:
            await speech.add_text("Long sentence that nobody hears to its end. ")
            async for _ in speech.audio():
                break  # the first chunk, then the consumer is gone

    asyncio.run(main())
    gate.set()
    assert engine.wait_until(lambda fake: fake.calls[0].outcome == "closed")
    cancelled = runtime.metrics.registry.get_sample_value("tts_cancellations_total", {"reason": "cancelled"})
    assert cancelled == 1
