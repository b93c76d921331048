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
from typing import Any

import numpy as np

from sentiric_tts.cluster.description import EngineDescription, EngineMismatch, describe
from sentiric_tts.cluster.replica_stats import OUTCOMES, ReplicaStamp, ReplicaStats, digest_key
from sentiric_tts.engines.base import CloningEngine, Engine, GenerationParams, LatentEngine, Voice
from sentiric_tts.engines.selection import load_engine
from sentiric_tts.settings import Settings, get_settings
from sentiric_tts.synthesis.scheduler import EngineScheduler

log = logging.getLogger(__name__)

_CONDITIONING_ENTRIES = 64
"""Decoded cloned-voice conditionings a replica keeps: a voice that speaks sentence after
sentence is decoded once, not once per segment. Their keys are in the routing stats, so the
router sends the voice back here (routing.py)."""


class _Tally:
    """A replica's segment and decode totals (its streams run on one event loop, but stay safe
    anyway)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._segments = dict.fromkeys(OUTCOMES, 0)
        self._synthesis_s = 0.0
        self._audio_s = 0.0
        self._decodes = 0

    def record(self, outcome: str, synthesis_s: float, audio_s: float) -> None:
        with self._lock:
            self._segments[outcome] += 1
            self._synthesis_s += synthesis_s
            self._audio_s += audio_s

    def decoded(self) -> None:
        with self._lock:
            self._decodes += 1

    def stats(self, jobs_in_flight: int, conditionings: frozenset[str]) -> ReplicaStats:
        with self._lock:
            return ReplicaStats(
                jobs_in_flight,
                dict(self._segments),
                self._synthesis_s,
                self._audio_s,
                self._decodes,
                conditionings,
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
        self._contract = self._description.contract()
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
        conditioning_key: str | None = None,
        contract: str | None = None,
    ) -> AsyncIterator[object]:
        """The stamp, then the engine's float32 PCM chunks for one segment. Closing the stream
        (the ingress's request ended) cancels the job before its next chunk. `conditioning_key`
        is for the router (routing.py), which reads it from the call; unused here. `contract`:
        the ingress's EngineDescription.contract(); a call from an ingress built for another
        engine is refused (EngineMismatch) before any audio."""
        if contract is not None and contract != self._contract:
            raise EngineMismatch(
                f"engine replica {self.stamp.replica} runs {self._description.name} "
                f"({self._description.sample_rate} Hz, contract {self._contract}), not the engine the "
                f"ingress was built for (contract {contract}): an engine change must replace the "
                "ingress too; redeploy the whole application (a TTS_* setting in its runtime_env)"
            )
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

    async def record_routing_stats(self) -> dict[str, Any]:
        """Serve's controller calls this every `request_routing_stats_period_s` and hands the
        result to every handle's router (routing.py): the conditionings this replica holds
        decoded (the router sends their voices here) and its figures (the ingress's /metrics).
        Never raises: the controller would keep the last stats and log each failure."""
        try:
            return self.stats().to_routing_stats()
        except Exception:
            log.exception("Engine replica %s: routing stats failed", self.stamp.replica)
            return {}

    def stats(self) -> ReplicaStats:
        """This replica's figures now."""
        held = frozenset(digest_key(digest) for digest in list(self._conditionings))
        return self._tally.stats(self._scheduler.jobs_in_flight, held)

    # --- cloning: conditioning crosses the handle as the engine's own dump ---

    async def clone_conditioning(
        self, clips: Sequence[np.ndarray], sample_rate: int
    ) -> tuple[ReplicaStamp, bytes]:
        """Conditioning computed from clips, with the stamp of the replica that computed it (the
        ingress counts these: tts_cluster_conditioning_calls_total)."""
        engine = self._cloning()
        conditioning = await self._scheduler.call(lambda _: engine.clone_conditioning(clips, sample_rate))
        data = engine.dump_conditioning(conditioning)
        # Held as if decoded: the voice's first requests come back here (routing.py), no decode.
        self._remember(hashlib.sha256(data).digest(), conditioning)
        return self.stamp, data

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
        self._tally.decoded()
        self._remember(key, conditioning)
        return conditioning

    def _remember(self, digest: bytes, conditioning: object) -> None:
        self._conditionings[digest] = conditioning
        self._conditionings.move_to_end(digest)
        while len(self._conditionings) > _CONDITIONING_ENTRIES:
            self._conditionings.popitem(last=False)
