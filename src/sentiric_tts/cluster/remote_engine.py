"""The Engine protocol in the ingress, its work done by the engine deployment's replicas.

Runtime.build gets `RemoteEngines(handle, settings).load` as its `load`, so the pipeline (catalogue,
planner, renderer, scheduler) is the one-machine code, and only `synthesize` and the cloning calls
cross the Serve handle. Each `synthesize` is one streaming call (`handle.options(stream=True)`):
Serve's router picks the replica with the shortest queue, and the chunks come back as the replica
makes them.

A replica lost before the segment's first audio reached the ingress (killed, its node gone,
unreachable) is retried on another one: nothing was heard yet, so the client cannot tell. Once
audio has gone on, the segment cannot be resumed elsewhere (another replica would start it
again), so the call raises EngineError and the door ends the stream as an engine failure.
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
from typing import Any

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from ray.exceptions import RayActorError, WorkerCrashedError
from ray.serve.handle import DeploymentHandle

from sentiric_tts.cluster.description import EngineDescription
from sentiric_tts.cluster.engine_replica import ReplicaFigures, ReplicaStamp
from sentiric_tts.engines.base import EngineError, EngineKind, GenerationParams, Voice, VoiceInfo
from sentiric_tts.settings import Settings

log = logging.getLogger(__name__)

_REPLICA_LOST = (RayActorError, WorkerCrashedError)  # ActorDiedError, ActorUnavailableError too


@dataclass(frozen=True)
class RemoteConditioning:
    """Cloned-voice conditioning held by the ingress as the engine's own dump: the ingress never
    imports the engine's libraries (torch), and replicas decode it once each (engine_replica.py)."""

    data: bytes


class ReplicaCalls(Collector):
    """Engine calls per replica, as the ingress saw them: text segments
    (tts_cluster_engine_calls_total) and conditioning computed from clips
    (tts_cluster_conditioning_calls_total); and each replica's own engine-side figures
    (tts_replica_*), the latest that replica sent with a finished segment (ReplicaFigures).

    The figures come with the streams rather than from a scrape of every replica: a Serve handle
    routes each call to one replica of its choosing, so reaching each replica on scrape would take
    Serve's private controller and actor names. A replica that has not finished a segment for this
    ingress has no figures here yet; one that is gone keeps its last figures (its
    tts_replica_report_timestamp_seconds stops moving) until the ingress restarts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[ReplicaStamp] = Counter()
        self._conditionings: Counter[ReplicaStamp] = Counter()
        self._figures: dict[ReplicaStamp, ReplicaFigures] = {}

    def record(self, stamp: ReplicaStamp) -> None:
        with self._lock:
            self._calls[stamp] += 1

    def record_conditioning(self, stamp: ReplicaStamp) -> None:
        with self._lock:
            self._conditionings[stamp] += 1

    def report(self, figures: ReplicaFigures) -> None:
        with self._lock:
            known = self._figures.get(figures.stamp)
            if known is None or figures.sequence > known.sequence:  # streams may end out of order
                self._figures[figures.stamp] = figures

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
        labels = ["replica", "node"]
        queue = GaugeMetricFamily(
            "tts_replica_queue_depth",
            "Synthesis jobs in an engine replica's scheduler (running and waiting), as of its latest report.",
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
        reported = GaugeMetricFamily(
            "tts_replica_report_timestamp_seconds",
            "When an engine replica sent its latest figures.",
            labels=labels,
        )
        with self._lock:
            for stamp, count in self._calls.items():
                calls.add_metric([stamp.replica, stamp.node], count)
            for stamp, count in self._conditionings.items():
                conditionings.add_metric([stamp.replica, stamp.node], count)
            for stamp, figures in self._figures.items():
                ids = [stamp.replica, stamp.node]
                queue.add_metric(ids, figures.jobs_in_flight)
                for outcome, count in sorted(figures.segments.items()):
                    segments.add_metric([*ids, outcome], count)
                synthesis.add_metric(ids, figures.synthesis_seconds)
                audio.add_metric(ids, figures.audio_seconds)
                reported.add_metric(ids, figures.at)
        yield calls
        yield conditionings
        yield from (queue, segments, synthesis, audio, reported)


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
        self.name = description.name
        self.sample_rate = description.sample_rate
        self.device = f"ray:{description.device}"
        self.supports_cloning = description.supports_cloning
        self.streams_within_segment = description.streams_within_segment
        self._retries = settings.cluster.engine_retries
        self._backoff_s = settings.cluster.retry_backoff_seconds
        self._timeout_s = settings.cluster.call_timeout_seconds
        self.calls = ReplicaCalls()

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
        conditioning = voice.conditioning.data if isinstance(voice.conditioning, RemoteConditioning) else None
        for attempt in range(self._retries + 1):
            stream = self._streaming.synthesize.remote(
                text, language, voice.id, conditioning, params, awaited
            )
            heard = False
            try:
                for item in stream:
                    if isinstance(item, ReplicaStamp):
                        self.calls.record(item)
                        continue
                    if isinstance(item, ReplicaFigures):
                        self.calls.report(item)
                        continue
                    heard = True
                    # A copy: arrays from Ray's object store are read-only.
                    yield np.array(item, dtype=np.float32)
                return
            except _REPLICA_LOST as exc:
                if heard or attempt == self._retries:
                    raise EngineError(
                        f"engine replica lost ({'mid-stream' if heard else 'no retry left'}): {exc}"
                    ) from exc
                log.warning("engine replica lost before the first audio; retrying (%s)", exc)
                time.sleep(self._backoff_s * 2**attempt)
            except Exception as exc:  # the engine failed on its replica: no retry
                raise EngineError(f"engine replica failed: {exc}") from exc
            finally:
                stream.cancel()  # the job ended or was closed: the replica stops its work

    def _call(self, method: str, *args: Any) -> Any:
        """One blocking call to a replica. Serve refuses a blocking `result()` on an event loop
        (the doors call some of these from one), so there it runs on a helper thread."""

        def call() -> Any:
            return getattr(self._handle, method).remote(*args).result(timeout_s=self._timeout_s)

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
