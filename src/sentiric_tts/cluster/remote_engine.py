"""The Engine protocol in the ingress, its work done by the engine deployment's replicas.

Runtime.build gets `RemoteEngines(handle, settings).load` as its `load`, so the pipeline (catalogue,
planner, renderer, scheduler) is the one-machine code, and only `synthesize` and the cloning calls
cross the Serve handle. Each `synthesize` is one streaming call (`handle.options(stream=True)`):
the deployment's router (routing.py) picks the replica with the shorter queue of two, or one that
holds the call's cloned-voice conditioning (named by the `conditioning_key` it carries) when that
one is no busier, and the chunks come back as the replica makes them.

A replica lost before the segment's first audio reached the ingress (killed, its node gone,
unreachable) is retried on another one: nothing was heard yet, so the client cannot tell. Once
audio has gone on, the segment cannot be resumed elsewhere (another replica would start it
again), so the call raises EngineLost and the door ends the request with its "engine unavailable"
error (failures.EngineUnavailable: HTTP 503 or a broken stream, gRPC UNAVAILABLE, a WebSocket or
Wyoming error event), which tells the client that sending it again will work.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from ray.exceptions import RayActorError, WorkerCrashedError
from ray.serve.handle import DeploymentHandle

from sentiric_tts.cluster import replica_stats
from sentiric_tts.cluster.description import EngineDescription, EngineMismatch
from sentiric_tts.cluster.replica_stats import ReplicaStamp, conditioning_key
from sentiric_tts.engines.base import EngineError, EngineKind, EngineLost, GenerationParams, Voice, VoiceInfo
from sentiric_tts.settings import Settings

log = logging.getLogger(__name__)

_REPLICA_LOST = (RayActorError, WorkerCrashedError)  # ActorDiedError, ActorUnavailableError too


@dataclass(frozen=True)
class RemoteConditioning:
    """Cloned-voice conditioning held by the ingress as the engine's own dump: the ingress never
    imports the engine's libraries (torch), and replicas decode it once each (engine_replica.py)."""

    data: bytes

    @cached_property
    def key(self) -> str:
        """Its name for the router (computed once: the library keeps this object in memory)."""
        return conditioning_key(self.data)


class ReplicaCalls(Collector):
    """Engine calls per replica, as the ingress saw them: text segments
    (tts_cluster_engine_calls_total) and conditioning computed from clips
    (tts_cluster_conditioning_calls_total); and each replica's own engine-side figures
    (tts_replica_*) from its latest routing stats.

    Those figures are what the deployment's router in this process last received from Serve
    (routing.py publishes them to replica_stats): at most a routing-stats period old
    (serve.yaml), for exactly the replicas Serve routes to now; a replica that is gone is gone
    from them. A replica that has not reported yet, or a deployment given another router, has
    no tts_replica_* figures here."""

    def __init__(self, deployment: str) -> None:
        self._deployment = deployment  # replica_stats.deployment_key of the engine deployment
        self._lock = threading.Lock()
        self._calls: Counter[ReplicaStamp] = Counter()
        self._conditionings: Counter[ReplicaStamp] = Counter()

    def record(self, stamp: ReplicaStamp) -> None:
        with self._lock:
            self._calls[stamp] += 1

    def record_conditioning(self, stamp: ReplicaStamp) -> None:
        with self._lock:
            self._conditionings[stamp] += 1

    def collect(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "tts_cluster_engine_calls",
            "Text segments each engine replica took from this ingress.",
            labels=["replica", "node"],
        )
        conditionings = CounterMetricFamily(
            "tts_cluster_conditioning_calls",
            "Cloned-voice conditionings each engine replica computed from clips for this ingress.",
            labels=["replica", "node"],
        )
        with self._lock:
            for stamp, count in self._calls.items():
                calls.add_metric([stamp.replica, stamp.node], count)
            for stamp, count in self._conditionings.items():
                conditionings.add_metric([stamp.replica, stamp.node], count)
        yield calls
        yield conditionings
        yield from _replica_figures(replica_stats.latest(self._deployment))


def _replica_figures(replicas: dict[ReplicaStamp, replica_stats.ReplicaStats]) -> Iterator[Metric]:
    labels = ["replica", "node"]
    queue = GaugeMetricFamily(
        "tts_replica_queue_depth",
        "Synthesis jobs in an engine replica's scheduler (running and waiting), as of its latest routing stats.",
        labels=labels,
    )
    segments = CounterMetricFamily(
        "tts_replica_segments",
        "Text segments an engine replica synthesized, by outcome.",
        labels=[*labels, "outcome"],
    )
    synthesis = CounterMetricFamily(
        "tts_replica_synthesis_seconds", "Wall time of an engine replica's text segments.", labels=labels
    )
    audio = CounterMetricFamily(
        "tts_replica_audio_seconds", "Seconds of audio an engine replica produced.", labels=labels
    )
    held = GaugeMetricFamily(
        "tts_replica_conditionings",
        "Cloned-voice conditionings an engine replica holds decoded in memory (the router prefers it for them).",
        labels=labels,
    )
    decodes = CounterMetricFamily(
        "tts_replica_conditioning_decodes",
        "Cloned-voice conditionings an engine replica decoded from the dump a call carried (not in its memory).",
        labels=labels,
    )
    for stamp, stats in sorted(replicas.items(), key=lambda item: (item[0].node, item[0].replica)):
        ids = [stamp.replica, stamp.node]
        queue.add_metric(ids, stats.jobs_in_flight)
        for outcome, count in sorted(stats.segments.items()):
            segments.add_metric([*ids, outcome], count)
        synthesis.add_metric(ids, stats.synthesis_seconds)
        audio.add_metric(ids, stats.audio_seconds)
        held.add_metric(ids, len(stats.conditionings))
        decodes.add_metric(ids, stats.conditioning_decodes)
    yield from (queue, segments, synthesis, audio, held, decodes)


class RemoteEngine:
    """An engine deployment as one Engine. Its `kind` is "batched" whatever the replicas run: the
    ingress scheduler then gives each admitted job its own thread, which waits on its remote
    stream, so the ingress bounds admission (TTS_MAX_QUEUED_REQUESTS) and the replicas' own
    schedulers order the engine work."""

    kind: EngineKind = "batched"

    def __init__(self, handle: DeploymentHandle, description: EngineDescription, settings: Settings) -> None:
        self._handle = handle
        self._streaming = handle.options(stream=True)
        self.description = description
        self._contract = description.contract()
        self.stale: str | None = None
        """Why this ingress no longer matches the engine replicas (EngineMismatch), once a
        replica has said so."""
        self.name = description.name
        self.sample_rate = description.sample_rate
        self.device = f"ray:{description.device}"
        self.supports_cloning = description.supports_cloning
        self.streams_within_segment = description.streams_within_segment
        self._retries = settings.cluster.engine_retries
        self._backoff_s = settings.cluster.retry_backoff_seconds
        self._timeout_s = settings.cluster.call_timeout_seconds
        self.calls = ReplicaCalls(replica_stats.deployment_key(handle.app_name, handle.deployment_name))

    def languages(self) -> list[str]:
        return list(self.description.languages)

    def voices(self) -> list[VoiceInfo]:
        return list(self.description.voices)

    def default_voice(self) -> str:
        return self.description.default_voice

    def max_segment_chars(self, language: str) -> int:
        limits = self.description.max_segment_chars
        return limits.get(language, min(limits.values(), default=400))

    def fingerprint(self) -> str:
        return self.description.fingerprint

    def warmup(self) -> None:
        """Nothing: each replica warms its engine up before Serve routes to it."""

    def synthesize(
        self, text: str, language: str, voice: Voice, params: GenerationParams, awaited: bool = False
    ) -> Iterator[np.ndarray]:
        remote = voice.conditioning if isinstance(voice.conditioning, RemoteConditioning) else None
        conditioning, key = (remote.data, remote.key) if remote is not None else (None, None)
        for attempt in range(self._retries + 1):
            stream = self._streaming.synthesize.remote(
                text,
                language,
                voice.id,
                conditioning,
                params,
                awaited,
                conditioning_key=key,
                contract=self._contract,
            )
            heard = False
            try:
                for item in stream:
                    if isinstance(item, ReplicaStamp):
                        self.calls.record(item)
                        continue
                    heard = True
                    # A copy: arrays from Ray's object store are read-only.
                    yield np.array(item, dtype=np.float32)
                return
            except _REPLICA_LOST as exc:
                if heard or attempt == self._retries:
                    raise EngineLost(
                        f"engine replica lost ({'mid-stream' if heard else 'no retry left'}): {exc}"
                    ) from exc
                log.warning("engine replica lost before the first audio; retrying (%s)", exc)
                time.sleep(self._backoff_s * 2**attempt)
            except EngineMismatch as exc:
                # The replicas run another engine than this ingress was built for (an engine-only
                # update): nothing to play, and a retry succeeds once Serve has replaced this
                # ingress, which its health check asks for (app.py).
                self.stale = str(exc)
                log.error("%s", exc)
                raise EngineLost("engine replica runs another engine than this ingress's") from exc
            except Exception as exc:  # the engine failed on its replica: no retry
                raise EngineError(f"engine replica failed: {exc}") from exc
            finally:
                stream.cancel()  # the job ended or was closed: the replica stops its work

    def _call(self, method: str, *args: Any) -> Any:
        """One blocking call to a replica. Serve refuses a blocking `result()` on an event loop
        (the doors call some of these from one), so there it runs on a helper thread."""

        def call() -> Any:
            try:
                return getattr(self._handle, method).remote(*args).result(timeout_s=self._timeout_s)
            except _REPLICA_LOST as exc:
                raise EngineLost(f"engine replica lost during {method}: {exc}") from exc

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return call()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="remote-engine-call") as pool:
            return pool.submit(call).result()


class RemoteCloningEngine(RemoteEngine):
    """CloningEngine across the handle: conditioning is made on a replica and kept as its dump."""

    def clone_conditioning(self, clips: Sequence[np.ndarray], sample_rate: int) -> object:
        stamp, data = self._call("clone_conditioning", list(clips), sample_rate)
        self.calls.record_conditioning(stamp)
        return RemoteConditioning(data)

    def conditioning_tag(self) -> str:
        return self.description.conditioning_tag

    def dump_conditioning(self, conditioning: object) -> bytes:
        assert isinstance(conditioning, RemoteConditioning)
        return conditioning.data

    def load_conditioning(self, data: bytes) -> object:
        return RemoteConditioning(data)


class RemoteLatentEngine(RemoteCloningEngine):
    """LatentEngine across the handle (XTTS's vectors a client holds and sends back)."""

    def speaker_conditioning(self, voice_id: str) -> object:
        return RemoteConditioning(self._call("speaker_conditioning", voice_id))

    def conditioning_vectors(self, conditioning: object) -> tuple[list[float], list[list[float]]]:
        assert isinstance(conditioning, RemoteConditioning)
        return self._call("conditioning_vectors", conditioning.data)  # type: ignore[no-any-return]

    def conditioning_from_vectors(
        self, speaker_embedding: Sequence[float], gpt_cond_latent: Sequence[float] | Sequence[Sequence[float]]
    ) -> object:
        return RemoteConditioning(
            self._call("conditioning_from_vectors", list(speaker_embedding), list(gpt_cond_latent))
        )


def remote_engine(handle: DeploymentHandle, settings: Settings) -> RemoteEngine:
    """The engine deployment as the Engine its replicas describe (waits for one to be up)."""
    description: EngineDescription = handle.describe.remote().result(
        timeout_s=settings.cluster.call_timeout_seconds
    )
    kind = (
        RemoteLatentEngine
        if description.latents
        else RemoteCloningEngine
        if description.cloning
        else RemoteEngine
    )
    return kind(handle, description, settings)
