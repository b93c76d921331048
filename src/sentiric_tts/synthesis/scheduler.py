"""Runs engine work on dedicated worker threads, fairly, off the event loop.

Each admitted request is a job: a factory that, given an engine instance and the job's state,
returns a synchronous iterator of items, usually PCM chunks (the engine's generator); the state
tells the engine call whether someone still waits for the job's first audio (`awaited`). One-off
engine calls (cloning conditioning) are one-item jobs through `call`. A job is bound to the engine instance that first
advances it (an engine's generator cannot move to another instance); until then any may.

Each instance has `stream_workers` threads that advance jobs one chunk at a time, in turns, and
may have `first_audio_workers` threads that only advance jobs that have not produced audio yet.
Engine calls cannot be interrupted, so fairness at chunk granularity alone still leaves a new
request waiting for the sentences already in progress; with the stream workers at a lower OS
priority (`stream_worker_nice`, and Linux's SCHED_IDLE class), the kernel preempts them while a
first-audio worker renders, and a new request's first audio costs about what it costs on an idle
service. Engines that cannot run calls in parallel (a GPU model) get one stream worker and no
first-audio worker.

Without first-audio workers, jobs that have produced no output yet go first, the rest take
turns. A job whose consumer has `buffer_chunks` chunks unread is skipped until it reads
(backpressure), and a cancelled job is closed before its next chunk, so nothing synthesizes for
nobody. Admission is bounded: past `max_jobs` the scheduler refuses at once instead of queueing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sentiric_tts.engines.base import EngineLost
from sentiric_tts.engines.thread_priority import lower_current_thread_priority, stream_thread_priority
from sentiric_tts.failures import (
    SHUTTING_DOWN_MESSAGE,
    EngineUnavailable,
    ServiceBusy,
    ShuttingDown,
    SynthesisFailed,
)

log = logging.getLogger(__name__)

_END = object()
T = TypeVar("T")

_CUT_MESSAGE = "The service shut down before this synthesis was done; retry on another instance."


class JobState:
    """What the job's own engine calls may know of it, read when they start."""

    def __init__(self, job: _Job) -> None:
        self._job = job

    @property
    def awaited(self) -> bool:
        """Nothing of the job has been heard yet: someone waits for its first audio."""
        return self._job.produced == 0


JobFactory = Callable[[Any, JobState], Iterator[object]]


class _Job:
    def __init__(self, loop: asyncio.AbstractEventLoop, factory: JobFactory) -> None:
        self.loop = loop
        self.factory = factory
        self.chunks: Iterator[object] | None = None
        self.instance: int | None = None
        self.running = False
        self.inbox: asyncio.Queue[object] = asyncio.Queue()
        self.buffered = 0
        self.produced = 0
        self.cancelled = False
        self.finished = False


@dataclass(frozen=True)
class WorkerLayout:
    """Threads per engine instance (see the module's doc)."""

    stream_workers: int = 1
    first_audio_workers: int = 0
    stream_worker_nice: int = 0
    """How much lower the stream workers' OS priority is (only with first-audio workers)."""
    stream_worker_idle_class: bool = False
    """Stream workers also in Linux's SCHED_IDLE class (with a lowered priority only)."""

    @property
    def applied_stream_nice(self) -> int:
        """The priority lowering the stream workers really get (stream_thread_priority)."""
        return self._applied_priority[0]

    @property
    def applied_idle_class(self) -> bool:
        return self._applied_priority[1]

    @property
    def _applied_priority(self) -> tuple[int, bool]:
        return stream_thread_priority(
            self.first_audio_workers > 0, self.stream_worker_nice, self.stream_worker_idle_class
        )


@dataclass
class _Worker:
    instance: int
    first_audio_only: bool
    nice: int
    name: str
    idle_class: bool = False


class EngineScheduler:
    def __init__(
        self,
        engines: Sequence[object],
        *,
        max_jobs: int,
        buffer_chunks: int,
        retry_after_s: int,
        is_output: Callable[[object], bool] = lambda item: True,
        layout: WorkerLayout = WorkerLayout(),
    ) -> None:
        """`is_output` tells output (audio) from framing items (segment starts, pauses): a job
        keeps its first-chunk priority until it has delivered output, not merely a marker.
        More than one thread per instance only for engines whose calls may run in parallel."""
        self._is_output = is_output
        if not engines:
            raise ValueError("the scheduler needs at least one engine instance")
        if layout.stream_workers < 1 or layout.first_audio_workers < 0:
            raise ValueError("each engine instance needs a stream worker")
        self._engines = list(engines)
        self.layout = layout
        self._workers = [
            _Worker(
                index,
                first_audio_only=False,
                nice=layout.applied_stream_nice,
                name=f"engine-{index}-stream-{n}",
                idle_class=layout.applied_idle_class,
            )
            for index in range(len(self._engines))
            for n in range(layout.stream_workers)
        ] + [
            _Worker(index, first_audio_only=True, nice=0, name=f"engine-{index}-first-audio-{n}")
            for index in range(len(self._engines))
            for n in range(layout.first_audio_workers)
        ]
        self._max_jobs = max_jobs
        self._buffer_chunks = buffer_chunks
        self._retry_after_s = retry_after_s
        self._cond = threading.Condition()
        self._jobs: deque[_Job] = deque()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._admitting = False

    # --- lifecycle ---

    def start(self) -> None:
        self._stopping = False
        self._admitting = True
        self._threads = [
            threading.Thread(target=self._run, args=(worker,), name=worker.name, daemon=True)
            for worker in self._workers
        ]
        for thread in self._threads:
            thread.start()

    def close_admission(self) -> None:
        """Refuse new jobs from now on; admitted ones go on."""
        with self._cond:
            self._admitting = False

    def cut(self) -> int:
        """End every job still in flight: its consumer gets ShuttingDown at once (so each door
        reports an error instead of waiting), and its engine work stops before its next chunk.
        Returns how many jobs were cut."""
        with self._cond:
            cut = [job for job in self._jobs if not job.cancelled and not job.finished]
            for job in cut:
                job.cancelled = True
            self._cond.notify_all()
        for job in cut:
            self._deliver(job, ShuttingDown(_CUT_MESSAGE, self._retry_after_s))
        return len(cut)

    def stop(self, drain_s: float = 0.0, timeout_s: float = 10.0) -> None:
        """Stop admitting, give in-flight jobs `drain_s` to finish, cut the rest, stop."""
        self.close_admission()
        deadline = time.monotonic() + drain_s
        with self._cond:
            while self._jobs and time.monotonic() < deadline:
                self._cond.wait(min(0.1, max(0.0, deadline - time.monotonic())))
        self.cut()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads = []

    # --- state ---

    @property
    def retry_after_s(self) -> int:
        """What a refused client is told to wait before it retries."""
        return self._retry_after_s

    @property
    def jobs_in_flight(self) -> int:
        with self._cond:
            return len(self._jobs)

    # --- admission ---

    def submit(self, factory: JobFactory) -> JobHandle:
        """Admit a job, or raise ServiceBusy at once when the service is at capacity."""
        job = _Job(asyncio.get_running_loop(), factory)
        with self._cond:
            if self._stopping or not self._admitting or not self._threads:
                raise ShuttingDown(SHUTTING_DOWN_MESSAGE, self._retry_after_s)
            if len(self._jobs) >= self._max_jobs:
                raise ServiceBusy(
                    f"The synthesis queue is full ({self._max_jobs} requests in flight); retry shortly.",
                    self._retry_after_s,
                )
            self._jobs.append(job)
            self._cond.notify_all()
        return JobHandle(self, job)

    async def call(self, fn: Callable[[Any], T]) -> T:
        """Run one engine call (given the worker's engine), admitted like any job."""

        def once(engine: Any, _: JobState) -> Iterator[object]:
            yield fn(engine)

        handle = self.submit(once)
        try:
            result = await handle.__anext__()
        finally:
            handle.cancel()
        return result  # type: ignore[return-value]

    # --- worker ---

    def _pick(self, worker: _Worker) -> _Job | None:
        """The next job for `worker` to advance; caller holds the lock."""
        free = [job for job in self._jobs if not job.running and job.instance in (None, worker.instance)]
        for job in free:
            if job.cancelled:
                return job
        ready = [job for job in free if job.buffered < self._buffer_chunks]
        starting = [job for job in ready if job.produced == 0]
        going = [job for job in ready if job.produced > 0]
        if worker.first_audio_only:
            return starting[0] if starting else None
        if self.layout.first_audio_workers:
            # Starting jobs wait for a first-audio worker: on this thread they would run at the
            # lower priority, behind the very streams they should preempt.
            return going[0] if going else None
        return (starting or going or [None])[0]

    def _run(self, worker: _Worker) -> None:
        lower_current_thread_priority(worker.nice, worker.idle_class)
        engine = self._engines[worker.instance]
        while True:
            with self._cond:
                job = self._pick(worker)
                while job is None:
                    if self._stopping and not self._jobs:
                        return
                    self._cond.wait()
                    job = self._pick(worker)
                job.instance = worker.instance
                job.running = True
                # Rotate: the job we advance goes to the back of the turn order.
                self._jobs.remove(job)
                self._jobs.append(job)
            if job.cancelled:
                self._close(job)
                continue
            try:
                if job.chunks is None:
                    job.chunks = job.factory(engine, JobState(job))
                chunk = next(job.chunks)
            except StopIteration:
                self._finish(job, _END)
                continue
            except Exception as exc:  # the engine failed: tell the consumer, keep serving others
                log.exception("engine failed while synthesizing")
                self._finish(job, exc)
                continue
            with self._cond:
                job.buffered += 1
                if self._is_output(chunk):
                    job.produced += 1
            self._deliver(job, chunk)
            with self._cond:
                # Only now may another worker take the job: its chunks are delivered in order.
                job.running = False
                self._cond.notify_all()

    def _deliver(self, job: _Job, item: object) -> None:
        try:
            job.loop.call_soon_threadsafe(job.inbox.put_nowait, item)
        except RuntimeError:  # the consumer's event loop is gone: nobody is listening
            with self._cond:
                job.cancelled = True

    def _finish(self, job: _Job, item: object) -> None:
        with self._cond:
            job.finished = True
            job.running = False
            if job in self._jobs:
                self._jobs.remove(job)
            self._cond.notify_all()
        self._deliver(job, item)

    def _close(self, job: _Job) -> None:
        close = getattr(job.chunks, "close", None) if job.chunks is not None else None
        try:
            if close is not None:
                close()
        except Exception:
            log.exception("engine generator failed to close")
        with self._cond:
            job.finished = True
            if job in self._jobs:
                self._jobs.remove(job)
            self._cond.notify_all()

    # --- consumer side (event loop) ---

    def _consumed(self, job: _Job) -> None:
        with self._cond:
            job.buffered -= 1
            self._cond.notify_all()

    def _cancel(self, job: _Job) -> None:
        with self._cond:
            if not job.finished:
                job.cancelled = True
                self._cond.notify_all()


class JobHandle:
    """The consumer's end of a job: an async iterator of its items, cancellable."""

    def __init__(self, scheduler: EngineScheduler, job: _Job) -> None:
        self._scheduler = scheduler
        self._job = job

    def __aiter__(self) -> JobHandle:
        return self

    async def __anext__(self) -> object:
        item = await self._job.inbox.get()
        if item is _END:
            raise StopAsyncIteration
        if isinstance(item, ShuttingDown):
            raise item
        if isinstance(item, EngineLost):
            log.warning("engine lost during a job: %s", item)
            raise EngineUnavailable() from item
        if isinstance(item, BaseException):
            raise SynthesisFailed(str(item) or type(item).__name__) from item
        self._scheduler._consumed(self._job)
        return item

    def cancel(self) -> None:
        """Stop the job before its next chunk (a no-op once it has finished)."""
        self._scheduler._cancel(self._job)
