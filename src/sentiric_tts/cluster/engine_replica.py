"""One engine in an engine replica: its calls ordered by the same scheduler as on one machine.

The replica owns an EngineScheduler over its one engine, so a Piper replica keeps its stream and
first-audio threads (a new request's first audio preempts the streams already playing) and an
XTTS replica its batch loop with a thread per open sentence. Admission (503 + Retry-After) is the
ingress's: this scheduler's bound only has to reach what Serve sends a replica at once
(`max_ongoing_requests` in serve.yaml), so it is the larger of that and TTS_MAX_QUEUED_REQUESTS
(a small ingress limit must not make a replica refuse what Serve routed to it).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sentiric_tts.cluster.description import EngineDescription, describe
from sentiric_tts.engines.base import CloningEngine, Engine, GenerationParams, LatentEngine, Voice
from sentiric_tts.engines.selection import load_engine
from sentiric_tts.settings import Settings, get_settings
from sentiric_tts.synthesis.scheduler import EngineScheduler

log = logging.getLogger(__name__)

_CONDITIONING_ENTRIES = 64
"""Decoded cloned-voice conditionings a replica keeps: a voice that speaks sentence after
sentence is decoded once, not once per segment."""


@dataclass(frozen=True)
class ReplicaStamp:
    """The first item of every stream: which replica (on which node) took the call. The ingress
    counts calls per replica from it (metrics) and knows the replica is alive."""

    replica: str
    node: str


@dataclass(frozen=True)
class ReplicaFigures:
    """The last item of a stream that ran to its end: the replica's own engine-side figures, as
    totals since it started. The ingress keeps each replica's latest (highest `sequence`) and
    serves them on its /metrics labelled by replica and node (remote_engine.ReplicaCalls)."""

    stamp: ReplicaStamp
    sequence: int
    jobs_in_flight: int  # its scheduler's jobs, running and waiting
    segments: dict[str, int]  # outcome (completed, failed, cancelled) -> text segments
    synthesis_seconds: float  # wall time of its segments
    audio_seconds: float  # audio they produced
    at: float  # when (time.time())


class _Tally:
    """A replica's segment totals (its streams run on one event loop, but stay safe anyway)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sequence = 0
        self._segments = {"completed": 0, "failed": 0, "cancelled": 0}
        self._synthesis_s = 0.0
        self._audio_s = 0.0

    def record(self, outcome: str, synthesis_s: float, audio_s: float) -> None:
        with self._lock:
            self._segments[outcome] += 1
            self._synthesis_s += synthesis_s
            self._audio_s += audio_s

    def figures(self, stamp: ReplicaStamp, jobs_in_flight: int) -> ReplicaFigures:
        with self._lock:
            self._sequence += 1
            return ReplicaFigures(
                stamp,
                self._sequence,
                jobs_in_flight,
                dict(self._segments),
                self._synthesis_s,
                self._audio_s,
                time.time(),
            )


def _max_ongoing_requests() -> int:
    """What Serve sends this replica at once (0 outside Serve)."""
    try:
        from ray import serve

        return int(serve.get_replica_context()._deployment_config.max_ongoing_requests)
    except Exception:
        return 0


def _stamp() -> ReplicaStamp:
    try:  # inside Serve: the replica's and the node's ids; elsewhere (tests), the process
        import ray
        from ray import serve

        return ReplicaStamp(
            serve.get_replica_context().replica_id.unique_id, ray.get_runtime_context().get_node_id()
        )
    except Exception:
        return ReplicaStamp(f"pid-{os.getpid()}", "local")


class EngineReplica:
    """The engine deployment's class (app.py makes it a Serve deployment)."""

    def __init__(
        self, settings: Settings | None = None, load: Callable[[Settings], Engine] = load_engine
    ) -> None:
        settings = settings or get_settings()
        # The bound (and a batched engine's thread per job) covers what Serve may send at once.
        bound = max(settings.admission.max_queued_requests, _max_ongoing_requests())
        settings = settings.model_copy(
            update={"admission": settings.admission.model_copy(update={"max_queued_requests": bound})}
        )
        self._engine = load(settings)
        self._scheduler = EngineScheduler(
            [self._engine],
            max_jobs=settings.admission.max_queued_requests,
            buffer_chunks=settings.admission.stream_buffer_chunks,
            retry_after_s=settings.admission.retry_after_seconds,
            is_output=lambda item: isinstance(item, np.ndarray),
            layout=settings.worker_layout(self._engine.kind),
        )
        self._engine.warmup()
        self._scheduler.start()
        self._description = describe(self._engine)
        self._conditionings: OrderedDict[bytes, object] = OrderedDict()
        self._tally = _Tally()
        self.stamp = _stamp()
        log.info(
            "Engine replica %s ready: %s on %s", self.stamp.replica, self._engine.name, self._engine.device
        )

    def describe(self) -> EngineDescription:
        return self._description

    async def synthesize(
        self,
        text: str,
        language: str,
        voice_id: str,
        conditioning: bytes | None,
        params: GenerationParams,
        awaited: bool,
    ) -> AsyncIterator[object]:
        """The stamp, the engine's float32 PCM chunks for one segment, then (when it ran to its
        end) the replica's figures. Closing the stream (the ingress's request ended) cancels the
        job before its next chunk."""
        voice = Voice(voice_id, self._conditioning(conditioning))
        started = time.monotonic()
        job = self._scheduler.submit(
            lambda engine, _: engine.synthesize(text, language, voice, params, awaited=awaited)
        )
        samples = 0
        outcome = "cancelled"
        try:
            yield self.stamp
            async for chunk in job:
                if isinstance(chunk, np.ndarray):
                    samples += len(chunk)
                yield chunk
            outcome = "completed"
        except Exception:
            outcome = "failed"
            raise
        finally:
            job.cancel()
            self._tally.record(outcome, time.monotonic() - started, samples / self._engine.sample_rate)
        yield self.figures()

    def figures(self) -> ReplicaFigures:
        """This replica's engine-side figures now."""
        return self._tally.figures(self.stamp, self._scheduler.jobs_in_flight)

    # --- cloning: conditioning crosses the handle as the engine's own dump ---

    async def clone_conditioning(
        self, clips: Sequence[np.ndarray], sample_rate: int
    ) -> tuple[ReplicaStamp, bytes]:
        """Conditioning computed from clips, with the stamp of the replica that computed it (the
        ingress counts these: tts_cluster_conditioning_calls_total)."""
        engine = self._cloning()
        conditioning = await self._scheduler.call(lambda _: engine.clone_conditioning(clips, sample_rate))
        return self.stamp, engine.dump_conditioning(conditioning)

    async def speaker_conditioning(self, voice_id: str) -> bytes:
        engine = self._latents()
        return engine.dump_conditioning(engine.speaker_conditioning(voice_id))

    async def conditioning_vectors(self, conditioning: bytes) -> tuple[list[float], list[list[float]]]:
        return self._latents().conditioning_vectors(self._conditioning(conditioning))

    async def conditioning_from_vectors(
        self, speaker_embedding: Sequence[float], gpt_cond_latent: Sequence[float] | Sequence[Sequence[float]]
    ) -> bytes:
        engine = self._latents()
        return engine.dump_conditioning(engine.conditioning_from_vectors(speaker_embedding, gpt_cond_latent))

    def __del__(self) -> None:
        scheduler = getattr(self, "_scheduler", None)
        if scheduler is not None:
            scheduler.stop()

    def _cloning(self) -> CloningEngine:
        if not isinstance(self._engine, CloningEngine):
            raise TypeError(f"the {self._engine.name} engine cannot clone voices")
        return self._engine

    def _latents(self) -> LatentEngine:
        if not isinstance(self._engine, LatentEngine):
            raise TypeError(f"the {self._engine.name} engine has no conditioning vectors")
        return self._engine

    def _conditioning(self, data: bytes | None) -> object | None:
        if data is None:
            return None
        key = hashlib.sha256(data).digest()
        if key in self._conditionings:
            self._conditionings.move_to_end(key)
            return self._conditionings[key]
        conditioning = self._cloning().load_conditioning(data)
        self._conditionings[key] = conditioning
        while len(self._conditionings) > _CONDITIONING_ENTRIES:
            self._conditionings.popitem(last=False)
        return conditioning
