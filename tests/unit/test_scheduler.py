"""The engine scheduler: bounded admission, fair turns, backpressure, cancellation, failures."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from sentiric_tts.engines.thread_priority import current_thread_in_idle_class, current_thread_nice
from sentiric_tts.failures import ServiceBusy, SynthesisFailed
from sentiric_tts.synthesis.scheduler import EngineScheduler, WorkerLayout


class Tape:
    """A fake engine job that records which job the worker advanced, in order."""

    log: list[str]

    def __init__(
        self, log: list[str], name: str, chunks: int, gate: threading.Event | None = None, work_s: float = 0.0
    ) -> None:
        self.log, self.name, self.chunks, self.gate, self.work_s = log, name, chunks, gate, work_s
        self.closed = False

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            for index in range(self.chunks):
                if self.gate is not None:
                    self.gate.wait(10)
                time.sleep(self.work_s)  # stands in for the engine's compute
                self.log.append(self.name)
                yield np.full(4, index, dtype=np.float32)
        finally:
            self.closed = True


@pytest.fixture()
def scheduler() -> Iterator[EngineScheduler]:
    sched = EngineScheduler([object()], max_jobs=3, buffer_chunks=2, retry_after_s=7)
    sched.start()
    yield sched
    sched.stop()


def test_chunks_arrive_in_order(scheduler: EngineScheduler) -> None:
    async def main() -> list[float]:
        job = scheduler.submit(lambda _engine, _state: iter(Tape([], "a", 5)))
        return [float(chunk[0]) async for chunk in job]

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]


def test_full_queue_refuses_at_once_and_admitted_work_completes(scheduler: EngineScheduler) -> None:
    gate = threading.Event()

    async def main() -> list[int]:
        jobs = [
            scheduler.submit(lambda _engine, _state, i=i: iter(Tape([], str(i), 3, gate))) for i in range(3)
        ]
        with pytest.raises(ServiceBusy) as refused:
            scheduler.submit(lambda _engine, _state: iter(Tape([], "x", 1)))
        assert refused.value.retry_after_s == 7
        gate.set()

        async def drain(job) -> int:  # type: ignore[no-untyped-def]
            return len([c async for c in job])

        return await asyncio.gather(*(drain(job) for job in jobs))

    assert asyncio.run(main()) == [3, 3, 3]
    assert scheduler.jobs_in_flight == 0


def test_streams_take_turns_and_a_new_request_goes_first(scheduler: EngineScheduler) -> None:
    log: list[str] = []
    gate = threading.Event()

    async def main() -> None:
        long_job = scheduler.submit(lambda _engine, _state: iter(Tape(log, "long", 6, gate, work_s=0.02)))
        other = scheduler.submit(lambda _engine, _state: iter(Tape(log, "other", 6, gate, work_s=0.02)))
        gate.set()

        async def drain(job) -> None:  # type: ignore[no-untyped-def]
            async for _ in job:
                await asyncio.sleep(0)

        first = asyncio.create_task(drain(long_job))
        second = asyncio.create_task(drain(other))
        while log.count("long") < 2:
            await asyncio.sleep(0.001)
        newcomer = scheduler.submit(lambda _engine, _state: iter(Tape(log, "new", 1)))
        await drain(newcomer)
        await asyncio.gather(first, second)

    asyncio.run(main())
    assert log.count("long") == log.count("other") == 6
    # Interleaved at chunk granularity, not one job after the other.
    assert log.index("other") < len(log) - log[::-1].index("long") - 1
    # The newcomer was served before either long job had finished.
    assert log.index("new") < max(i for i, name in enumerate(log) if name == "long")


def test_a_new_request_keeps_priority_until_its_first_audio() -> None:
    """Framing items (a segment start) are not output: the newcomer's first audio still goes first."""
    sched = EngineScheduler(
        [object()],
        max_jobs=4,
        buffer_chunks=2,
        retry_after_s=1,
        is_output=lambda item: isinstance(item, np.ndarray),
    )
    sched.start()
    log: list[str] = []

    def newcomer() -> Iterator[object]:
        log.append("new-start")
        yield "segment start"  # a marker, no audio yet
        yield from Tape(log, "new", 1, work_s=0.02)

    async def main() -> None:
        streams = [
            sched.submit(lambda _engine, _state, n=n: iter(Tape(log, n, 8, work_s=0.02))) for n in ("a", "b")
        ]

        async def drain(job) -> None:  # type: ignore[no-untyped-def]
            async for _ in job:
                await asyncio.sleep(0)

        running = [asyncio.create_task(drain(job)) for job in streams]
        while len(log) < 3:
            await asyncio.sleep(0.001)
        await drain(sched.submit(lambda _engine, _state: newcomer()))
        await asyncio.gather(*running)

    try:
        asyncio.run(main())
    finally:
        sched.stop()
    # Nothing of the running streams between the newcomer's marker and its first audio.
    assert log[log.index("new-start") + 1] == "new"


def test_a_reader_that_stops_reading_stops_its_synthesis(scheduler: EngineScheduler) -> None:
    log: list[str] = []

    async def main() -> None:
        job = scheduler.submit(lambda _engine, _state: iter(Tape(log, "slow", 50)))
        await job.__anext__()
        await asyncio.sleep(0.2)  # the worker may run ahead by buffer_chunks, no further
        assert log.count("slow") <= 1 + 2
        job.cancel()

    asyncio.run(main())


def _cancel_after_first_chunk(sched: EngineScheduler, tape: Tape) -> None:
    """Run `tape` as a job, cancel it after its first chunk and wait until the scheduler lets go."""

    async def main() -> None:
        job = sched.submit(lambda _engine, _state: iter(tape))
        await job.__anext__()
        job.cancel()
        for _ in range(200):
            if sched.jobs_in_flight == 0:
                break
            await asyncio.sleep(0.01)

    asyncio.run(main())


def test_cancel_closes_the_engine_generator_before_its_next_chunk(scheduler: EngineScheduler) -> None:
    tape = Tape([], "c", 1000)
    _cancel_after_first_chunk(scheduler, tape)
    assert scheduler.jobs_in_flight == 0
    assert tape.closed and len(tape.log) <= 1 + 2


def test_an_engine_failure_reaches_the_consumer_and_the_worker_survives(scheduler: EngineScheduler) -> None:
    def broken() -> Iterator[np.ndarray]:
        yield np.zeros(4, dtype=np.float32)
        raise RuntimeError("GPU fell over")

    async def main() -> None:
        job = scheduler.submit(lambda _engine, _state: broken())
        await job.__anext__()
        with pytest.raises(SynthesisFailed, match="GPU fell over"):
            await job.__anext__()
        healthy = scheduler.submit(lambda _engine, _state: iter(Tape([], "ok", 2)))
        assert len([c async for c in healthy]) == 2

    asyncio.run(main())


def test_several_engine_instances_work_in_parallel_and_keep_jobs_on_one_instance() -> None:
    engines = ["engine-a", "engine-b"]
    sched = EngineScheduler(engines, max_jobs=8, buffer_chunks=2, retry_after_s=1)
    sched.start()
    seen: dict[int, set[str]] = {}
    both_busy = threading.Barrier(2, timeout=10)

    def job(index: int):  # type: ignore[no-untyped-def]
        def factory(engine: str, _state: object) -> Iterator[np.ndarray]:
            for step in range(4):
                seen.setdefault(index, set()).add(engine)
                if step == 0 and index < 2:
                    both_busy.wait()  # only passes if two instances run jobs at the same time
                yield np.zeros(2, dtype=np.float32)

        return factory

    async def main() -> list[int]:
        handles = [sched.submit(job(i)) for i in range(4)]

        async def drain(handle) -> int:  # type: ignore[no-untyped-def]
            return len([c async for c in handle])

        return await asyncio.gather(*(drain(h) for h in handles))

    try:
        assert asyncio.run(main()) == [4, 4, 4, 4]
    finally:
        sched.stop()
    assert all(len(engines_used) == 1 for engines_used in seen.values())
    assert {engine for used in seen.values() for engine in used} == set(engines)


# --- first-audio workers: new requests preempt streams in progress ---


def _lanes(
    stream_workers: int = 1, first_audio_workers: int = 1, nice: int = 5, idle_class: bool = False
) -> EngineScheduler:
    return EngineScheduler(
        [object()],
        max_jobs=8,
        buffer_chunks=2,
        retry_after_s=1,
        is_output=lambda item: isinstance(item, np.ndarray),
        layout=WorkerLayout(stream_workers, first_audio_workers, nice, idle_class),
    )


def test_a_new_request_gets_its_first_audio_while_a_stream_chunk_is_still_computing() -> None:
    """An engine call cannot be interrupted; a first-audio worker does not wait for it."""
    sched = _lanes()
    sched.start()
    stuck = threading.Event()
    release = threading.Event()

    def long_stream() -> Iterator[np.ndarray]:
        yield np.zeros(4, dtype=np.float32)
        stuck.set()
        release.wait(10)  # a long sentence, still computing
        yield np.ones(4, dtype=np.float32)

    async def main() -> tuple[bool, list[float]]:
        stream = sched.submit(lambda _engine, _state: long_stream())
        first = [float((await stream.__anext__())[0])]
        rest = asyncio.create_task(stream.__anext__())
        while not stuck.is_set():
            await asyncio.sleep(0.001)
        newcomer = sched.submit(lambda _engine, _state: iter(Tape([], "new", 1)))
        await asyncio.wait_for(newcomer.__anext__(), 5)
        served_while_stuck = not release.is_set()
        release.set()
        first.append(float((await rest)[0]))
        return served_while_stuck, first

    try:
        served_while_stuck, stream_chunks = asyncio.run(main())
    finally:
        release.set()
        sched.stop()
    assert served_while_stuck
    assert stream_chunks == [0.0, 1.0]


def test_first_audio_runs_on_first_audio_threads_and_streams_continue_at_lower_priority() -> None:
    sched = _lanes(stream_workers=2, first_audio_workers=1, nice=5, idle_class=True)
    sched.start()
    seen: dict[str, list[tuple[str, int | None, bool]]] = {}

    def job(name: str) -> Iterator[np.ndarray]:
        for index in range(6):
            seen.setdefault(name, []).append(
                (threading.current_thread().name, current_thread_nice(), current_thread_in_idle_class())
            )
            yield np.full(4, index, dtype=np.float32)

    async def main() -> list[list[float]]:
        handles = [sched.submit(lambda _engine, _state, n=n: job(n)) for n in ("a", "b", "c")]

        async def drain(handle) -> list[float]:  # type: ignore[no-untyped-def]
            return [float(chunk[0]) async for chunk in handle]

        return await asyncio.gather(*(drain(h) for h in handles))

    base = current_thread_nice()
    try:
        chunks = asyncio.run(main())
    finally:
        sched.stop()
    # Every job's chunks arrive whole and in order, although several threads advanced it.
    assert chunks == [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]] * 3
    for calls in seen.values():
        first_thread, first_nice, first_idle = calls[0]
        assert "first-audio" in first_thread
        assert all("stream" in thread for thread, _, _ in calls[1:])
        if base is not None:  # Linux: the kernel knows the stream threads are less urgent
            assert first_nice == base and not first_idle
            # ... and runs them only on cores no normal thread wants (SCHED_IDLE).
            assert all(nice == min(19, base + 5) and idle for _, nice, idle in calls[1:])


def test_stream_workers_of_one_instance_advance_jobs_in_parallel() -> None:
    sched = _lanes(stream_workers=2, first_audio_workers=1, nice=0)
    sched.start()
    both_busy = threading.Barrier(2, timeout=10)

    def job() -> Iterator[np.ndarray]:
        yield np.zeros(2, dtype=np.float32)  # first audio (first-audio worker)
        both_busy.wait()  # passes only if two stream workers compute at the same time
        yield np.zeros(2, dtype=np.float32)

    async def main() -> list[int]:
        handles = [sched.submit(lambda _engine, _state: job()) for _ in range(2)]

        async def drain(handle) -> int:  # type: ignore[no-untyped-def]
            return len([c async for c in handle])

        return await asyncio.gather(*(drain(h) for h in handles))

    try:
        assert asyncio.run(main()) == [2, 2]
    finally:
        sched.stop()


def test_cancelled_and_shut_down_with_first_audio_workers() -> None:
    sched = _lanes(stream_workers=1, first_audio_workers=1)
    before = set(threading.enumerate())
    sched.start()
    tape = Tape([], "c", 1000)
    _cancel_after_first_chunk(sched, tape)
    assert sched.jobs_in_flight == 0 and tape.closed
    sched.stop(timeout_s=5)
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("engine-0-")]
