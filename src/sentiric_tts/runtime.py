"""The service's live parts, built once at start and shared by every door."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sentiric_tts.api.security import ApiKeys, ClientLimits
from sentiric_tts.audio.reference import ReferenceLimits
from sentiric_tts.engines.base import Engine
from sentiric_tts.engines.selection import load_engine
from sentiric_tts.observability.metrics import ServiceMetrics
from sentiric_tts.settings import Settings
from sentiric_tts.synthesis.errors import RateLimited
from sentiric_tts.synthesis.pipeline import SynthesisPipeline
from sentiric_tts.synthesis.render import RunawayGuard
from sentiric_tts.synthesis.request import SynthesisRequest
from sentiric_tts.synthesis.scheduler import EngineScheduler, WorkerLayout
from sentiric_tts.synthesis.stream import AudioStream, PostProcessing
from sentiric_tts.voices.latent_cache import LatentCache
from sentiric_tts.voices.library import VoiceLibrary
from sentiric_tts.voices.library_voices import LibraryVoices

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    scheduler: EngineScheduler
    pipeline: SynthesisPipeline
    metrics: ServiceMetrics
    engines: list[Engine]
    api_keys: ApiKeys
    limits: ClientLimits
    ready: bool = field(default=False)
    shutdown_listeners: list[Callable[[], None]] = field(default_factory=list)
    """Told when shutdown begins (e.g. gRPC health turns NOT_SERVING); may run on any thread."""

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        started = time.perf_counter()
        engine = load_engine(settings)
        # Further instances of the same engine: the first one decided which engine that is.
        instance_settings = settings.model_copy(update={"engine": engine.name})
        engines = [engine] + [load_engine(instance_settings) for _ in range(settings.engine_instances - 1)]
        scheduler = EngineScheduler(
            engines,
            max_jobs=settings.max_queued_requests,
            buffer_chunks=settings.stream_buffer_chunks,
            retry_after_s=settings.retry_after_seconds,
            # Audio counts as a job's output; its segment and pause markers do not.
            is_output=lambda item: isinstance(item, np.ndarray),
            layout=_worker_layout(settings, engine),
        )
        latent_cache = LatentCache(settings.cache_path / "latents", settings.latent_cache_entries)
        metrics = ServiceMetrics(scheduler, latent_cache)
        pipeline = SynthesisPipeline(
            engine,
            scheduler,
            default_language=settings.default_language,
            default_voice=settings.default_voice,
            max_text_chars=settings.max_text_chars,
            sample_rates=settings.sample_rates,
            latent_cache=latent_cache,
            metrics=metrics,
            request_timeout_s=settings.request_timeout_seconds,
            reference_limits=ReferenceLimits(
                max_files=settings.clone_max_files,
                max_file_bytes=settings.clone_max_file_bytes,
                max_seconds=settings.clone_max_seconds,
                min_speech_seconds=settings.clone_min_speech_seconds,
            ),
            post=PostProcessing(
                normalize_loudness=settings.loudness_normalize,
                target_lufs=settings.loudness_target_lufs,
                true_peak_dbtp=settings.true_peak_ceiling_dbtp,
                sentence_pause_ms=settings.sentence_pause_ms,
                crossfade_ms=settings.crossfade_ms,
            ),
            runaway=RunawayGuard(floor_s=3.0, seconds_per_char=settings.runaway_seconds_per_char),
            ssml_max_bytes=settings.ssml_max_bytes,
            first_segment_chars=settings.first_segment_chars,
        )
        # Saved voices: every door reaches them through the pipeline's voice resolution.
        pipeline.library = LibraryVoices(
            VoiceLibrary(settings.voice_library_path, settings.voice_library_max_voices),
            engine,
            scheduler,
            latent_cache,
            pipeline.reference_limits,
            memory_entries=settings.latent_cache_entries,
        )
        log.info(
            "Engine %s loaded on %s in %.2f s (native rate %d Hz)",
            engine.name,
            engine.device,
            time.perf_counter() - started,
            engine.sample_rate,
        )
        return cls(
            settings=settings,
            engine=engine,
            scheduler=scheduler,
            pipeline=pipeline,
            metrics=metrics,
            engines=engines,
            api_keys=ApiKeys(settings.api_key_list),
            limits=ClientLimits(
                settings.rate_limit_per_minute, settings.rate_limit_burst, settings.max_streams_per_client
            ),
        )

    def admit_client(self, client: str) -> Callable[[], None]:
        """Rate limit and concurrent-request allowance for one client; returns the slot's release."""
        try:
            self.limits.take(client)
            return self.limits.acquire_stream(client)
        except RateLimited as exc:
            self.metrics.refusals.labels(exc.reason).inc()
            raise

    async def open_speech(self, request: SynthesisRequest, client: str, door: str) -> AudioStream:
        """What every door calls: admit the client, plan (cloning if asked), start the stream.

        Raises RateLimited, RequestError or ServiceBusy; the client's slot is released when the
        stream ends however it ends."""
        release = self.admit_client(client)
        try:
            audio = await self.start_speech(request, door)
        except BaseException:
            release()
            raise
        audio.add_done_callback(lambda _: release())
        return audio

    async def start_speech(self, request: SynthesisRequest, door: str) -> AudioStream:
        """Plan (cloning if asked) and admit one request for a client already admitted: a
        WebSocket session takes its client slot once, then speaks sentence after sentence."""
        plan = await self.pipeline.prepare(request)
        return self.pipeline.open_stream(plan, door=door)

    def start(self) -> None:
        """Start the worker and warm the engine up; ready afterwards."""
        started = time.perf_counter()
        for engine in self.engines:
            engine.warmup()
        if self.settings.loudness_normalize:
            self.pipeline.calibrate_default_voice()
        self.scheduler.start()
        self.ready = True
        log.info("Warm-up done in %.2f s; ready", time.perf_counter() - started)

    def begin_shutdown(self) -> None:
        """SIGTERM: readiness goes 503 and no new work is admitted; in-flight work goes on."""
        if self.ready:
            log.info("Shutting down: no new requests; in-flight work may finish")
        self.ready = False
        self.scheduler.close_admission()
        for listener in self.shutdown_listeners:
            listener()

    def stop(self) -> None:
        self.begin_shutdown()
        self.scheduler.stop(drain_s=self.settings.shutdown_grace_seconds)


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _worker_layout(settings: Settings, engine: Engine) -> WorkerLayout:
    """Scheduler threads per engine instance: see EngineScheduler and the settings they come from."""
    if not engine.parallel_calls:
        return WorkerLayout()
    workers = settings.engine_workers or _usable_cpus()
    return WorkerLayout(
        stream_workers=workers,
        first_audio_workers=workers if settings.first_audio_priority else 0,
        stream_worker_nice=settings.stream_worker_nice,
        stream_worker_idle_class=settings.stream_worker_idle_class,
    )
