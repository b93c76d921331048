"""The service's real Runtime (scheduler, pipeline, streams) around a FakeEngine, in-process:
no model, no server, no network."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from sentiric_tts.runtime import Runtime
from sentiric_tts.settings import Settings
from sentiric_tts.synthesis.request import SynthesisPlan, SynthesisRequest
from sentiric_tts.synthesis.stream import AudioStream
from tests.support.fake_engine import FakeEngine


def fake_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings isolated from the developer's .env and ./data, made for exact predictions:

    - loudness normalisation off (the request's fixed gain, 0 dB, and the limiter, which leaves
      the fake's tone, far under the ceiling, as it is);
    - 1 ms fades: every faded sample of the fake's tone stays non-zero in int16, so the exact
      zeros of the output are its pauses (with 10 ms fades the first samples round to zero);
    - two stream workers at the normal OS priority, no first-audio workers (unit tests must not
      depend on the host's scheduling classes);
    - no shutdown grace: stopping cuts what still runs at once.
    """
    values: dict[str, object] = {
        "data_dir": data_dir,
        "engine": "piper",  # never loaded: the fake engine is passed in
        "grpc_enabled": False,
        "loudness_normalize": False,
        "crossfade_ms": 1.0,
        "engine_workers": 2,
        "first_audio_priority": False,
        "shutdown_grace_seconds": 0.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@contextmanager
def fake_runtime(
    data_dir: Path, engine: FakeEngine | None = None, **overrides: object
) -> Iterator[tuple[Runtime, FakeEngine]]:
    """A started Runtime whose every engine instance is `engine` (a new FakeEngine if None),
    with `fake_settings(data_dir, **overrides)`. The calls of start-up (loudness calibration)
    are forgotten; on exit every hold is released and the runtime stopped."""
    engine = engine or FakeEngine()
    runtime = Runtime.build(fake_settings(data_dir, **overrides), load=lambda _settings: engine)
    try:
        runtime.start()
        engine.forget()
        yield runtime, engine
    finally:
        engine.release_all()
        runtime.stop()


def pcm(data: bytes) -> np.ndarray:
    """Raw int16 little-endian PCM bytes as samples."""
    return np.frombuffer(data, dtype="<i2")


async def open_pcm(runtime: Runtime, request: SynthesisRequest) -> AudioStream:
    """Plan and admit `request` as raw PCM (its own rate, or the engine's)."""
    plan = await runtime.pipeline.prepare(_as_pcm(request))
    return runtime.pipeline.open_stream(plan, door="test")


async def streamed_pcm(
    runtime: Runtime, request: SynthesisRequest
) -> tuple[SynthesisPlan, np.ndarray, AudioStream]:
    """The request's audio as its streamed chunks give it (plan, samples, the finished stream)."""
    stream = await open_pcm(runtime, request)
    data = b"".join([chunk async for chunk in stream.chunks()])
    return stream.plan, pcm(data), stream


async def whole_pcm(
    runtime: Runtime, request: SynthesisRequest
) -> tuple[SynthesisPlan, np.ndarray, AudioStream]:
    """The request's audio collected as one file, as the whole-file doors make it."""
    stream = await open_pcm(runtime, request)
    data = await stream.collect()
    return stream.plan, pcm(data), stream


def _as_pcm(request: SynthesisRequest) -> SynthesisRequest:
    return dataclasses.replace(request, output_format="pcm")


def zero_runs(samples: np.ndarray) -> list[int]:
    """Lengths of the runs of exact zeros in `samples`, in order."""
    silent = np.concatenate([[False], samples == 0, [False]])
    edges = np.flatnonzero(np.diff(silent.astype(np.int8)))
    return [int(end - start) for start, end in zip(edges[::2], edges[1::2], strict=True)]


async def eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait, yielding to the event loop, until `condition()` holds; AssertionError after
    `timeout_s` (a bound on the wait for a state, never a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.002)
