"""The scheduler (synthesis/scheduler.py) as the pipeline drives it, on the fake engine: admission,
cancellation, first audio before streams, failures, backpressure and `awaited`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sentiric_tts.failures import ServiceBusy, SynthesisFailed
from sentiric_tts.runtime import Runtime
from sentiric_tts.synthesis.request import SynthesisRequest
from sentiric_tts.synthesis.stream import AudioStream
from tests.support.fake_engine import FakeEngine
from tests.support.fake_runtime import eventually, fake_runtime, open_pcm, pcm

LONG = "This sentence is long enough to take many chunks of the fake engine's audio."


async def drain(chunks: AsyncIterator[bytes]) -> int:
    """Samples of what is left of a stream's chunks."""
    return sum([len(chunk) // 2 async for chunk in chunks])


async def read_all(audio: AudioStream) -> int:
    """Samples of the whole stream."""
    return await drain(audio.chunks())


async def first_audio(audio: AudioStream) -> tuple[int, AsyncIterator[bytes]]:
    """(samples of the first audio bytes, the iterator to read the rest from)."""
    chunks = audio.chunks()
    first = await asyncio.wait_for(anext(chunks), 10)
    return pcm(first).size, chunks


def started_chunks(count: int) -> Callable[[FakeEngine], bool]:
    """The first call has yielded `count` chunks."""
    return lambda fake: bool(fake.calls) and fake.calls[0].chunks == count


def refusals(runtime: Runtime) -> float:
    value = runtime.metrics.registry.get_sample_value("tts_refusals_total", {"reason": "queue_full"})
    return value or 0.0


def test_a_full_queue_refuses_at_once_and_admits_again_once_there_is_room(tmp_path: Path) -> None:
    with fake_runtime(tmp_path, max_queued_requests=2) as (runtime, engine):
        gate = engine.hold("Held")

        async def main() -> None:
            texts = ["Held first.", "Held second."]
            held = [await open_pcm(runtime, SynthesisRequest(text=text)) for text in texts]
            with pytest.raises(ServiceBusy) as refused:
                await open_pcm(runtime, SynthesisRequest(text="One too many."))
            assert refused.value.retry_after_s == runtime.settings.admission.retry_after_seconds
            assert refusals(runtime) == 1
            gate.set()
            lengths = await asyncio.gather(*(read_all(audio) for audio in held))
            assert lengths == [engine.expected_samples(text) for text in texts]
            await eventually(lambda: runtime.scheduler.jobs_in_flight == 0)
            assert await read_all(await open_pcm(runtime, SynthesisRequest(text="Room again."))) == (
                engine.expected_samples("Room again.")
            )

        asyncio.run(main())
        assert "One too many." not in engine.texts()


def test_cancelling_a_job_its_reader_left_frees_its_slot_without_more_engine_work(tmp_path: Path) -> None:
    with fake_runtime(tmp_path, max_queued_requests=1, stream_buffer_chunks=2) as (runtime, engine):

        async def main() -> None:
            unread = await open_pcm(runtime, SynthesisRequest(text=LONG))
            # The job stops at its buffer: a segment start and one chunk, nobody reading them.
            assert await asyncio.to_thread(engine.wait_until, started_chunks(1))
            with pytest.raises(ServiceBusy):
                await open_pcm(runtime, SynthesisRequest(text="Waiting for a slot."))
            unread.cancel()
            assert unread.outcome == "cancelled"
            await eventually(lambda: runtime.scheduler.jobs_in_flight == 0)
            assert await read_all(await open_pcm(runtime, SynthesisRequest(text="My turn."))) == (
                engine.expected_samples("My turn.")
            )

        asyncio.run(main())
        cancelled = engine.calls[0]
        assert (cancelled.text, cancelled.chunks, cancelled.outcome) == (LONG, 1, "closed")


def test_cancelling_a_job_inside_an_engine_call_frees_its_slot_when_the_call_returns(tmp_path: Path) -> None:
    with fake_runtime(tmp_path, max_queued_requests=1) as (runtime, engine):
        gate = engine.hold("long enough", after_chunks=1)

        async def main() -> None:
            audio = await open_pcm(runtime, SynthesisRequest(text=LONG))
            heard, _ = await first_audio(audio)
            assert heard > 0
            await asyncio.to_thread(engine.wait_held, "long enough")
            audio.cancel()
            # An engine call cannot be interrupted: the slot is the job's until the call returns.
            assert runtime.scheduler.jobs_in_flight == 1
            gate.set()
            await eventually(lambda: runtime.scheduler.jobs_in_flight == 0)
            await read_all(await open_pcm(runtime, SynthesisRequest(text="Next.")))

        asyncio.run(main())
        assert engine.calls[0].outcome == "closed" and engine.calls[0].chunks <= 2
        assert engine.calls[1].outcome == "finished"


def test_a_new_request_gets_its_first_audio_while_a_stream_holds_the_stream_worker(tmp_path: Path) -> None:
    # One stream worker and one first-audio worker, both at the same OS priority.
    settings = {"engine_workers": 1, "first_audio_priority": True, "stream_worker_nice": 0}
    with fake_runtime(tmp_path, **settings) as (runtime, engine):
        gate = engine.hold("long enough", after_chunks=1)

        async def main() -> None:
            streaming = await open_pcm(runtime, SynthesisRequest(text=LONG))
            _, streaming_rest = await first_audio(streaming)
            held = await asyncio.to_thread(engine.wait_held, "long enough")
            # The stream worker waits inside the running stream's engine call...
            newcomer = await open_pcm(runtime, SynthesisRequest(text="Hello, I just arrived."))
            heard, newcomer_rest = await first_audio(newcomer)  # ...and the newcomer is heard all the same
            assert heard > 0 and held.outcome == "running"
            gate.set()
            await drain(streaming_rest)
            await drain(newcomer_rest)

        asyncio.run(main())
        first, newcomer = engine.calls
        assert first.awaited and newcomer.awaited
        assert newcomer.thread.startswith("engine-0-first-audio")
        assert [call.outcome for call in engine.calls] == ["finished", "finished"]


def test_first_audio_is_awaited_and_later_sentences_are_not(runtime: Runtime, engine: FakeEngine) -> None:
    async def main() -> int:
        return await read_all(await open_pcm(runtime, SynthesisRequest(text="One. Two. Three.")))

    asyncio.run(main())
    assert [(call.text, call.awaited) for call in engine.calls] == [
        ("One.", True),
        ("Two.", False),
        ("Three.", False),
    ]


@pytest.mark.parametrize("after_chunks", [0, 1])
def test_a_failing_engine_call_ends_only_its_own_job(
    runtime: Runtime, engine: FakeEngine, after_chunks: int
) -> None:
    engine.fail_on("Broken", after_chunks=after_chunks)
    broken_text = "Broken sentence, which is long enough for several chunks of audio."
    healthy_text = "Healthy sentence, which is long enough for several chunks of audio."

    async def main() -> tuple[BaseException | int, BaseException | int]:
        broken = await open_pcm(runtime, SynthesisRequest(text=broken_text))
        healthy = await open_pcm(runtime, SynthesisRequest(text=healthy_text))
        results = await asyncio.gather(read_all(broken), read_all(healthy), return_exceptions=True)
        assert (broken.outcome, healthy.outcome) == ("failed", "ok")
        return results[0], results[1]

    failed, healthy = asyncio.run(main())
    assert isinstance(failed, SynthesisFailed)
    assert healthy == engine.expected_samples(healthy_text)
    assert runtime.metrics.registry.get_sample_value("tts_engine_errors_total") == 1
    assert runtime.scheduler.jobs_in_flight == 0


def test_an_unread_stream_stops_its_engine_at_the_buffer_while_others_run(tmp_path: Path) -> None:
    with fake_runtime(tmp_path, engine_workers=1, stream_buffer_chunks=2) as (runtime, engine):

        async def main() -> None:
            unread = await open_pcm(runtime, SynthesisRequest(text=LONG))
            assert await asyncio.to_thread(engine.wait_until, started_chunks(1))
            # The one worker serves another stream from start to end meanwhile...
            other = "Another sentence, read to its end."
            assert await read_all(await open_pcm(runtime, SynthesisRequest(text=other))) == (
                engine.expected_samples(other)
            )
            # ...and never advanced the unread one past its buffer (a segment start, one chunk).
            assert engine.calls[0].chunks == 1
            assert await read_all(unread) == engine.expected_samples(LONG)

        asyncio.run(main())
