"""The service's live parts, built once at start and shared by every door."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sentiric_tts.callers import ApiKeys, ClientLimits
from sentiric_tts.engines.base import BatchedEngine, Engine, Voice
from sentiric_tts.engines.selection import load_engine
from sentiric_tts.failures import RateLimited
from sentiric_tts.observability.metrics import ServiceMetrics
from sentiric_tts.settings import Settings
from sentiric_tts.synthesis.catalogue import VoiceCatalogue
from sentiric_tts.synthesis.pipeline import SynthesisPipeline
from sentiric_tts.synthesis.planning import SynthesisPlanner
from sentiric_tts.synthesis.renderer import Renderer
from sentiric_tts.synthesis.request import SynthesisPlan, SynthesisRequest
from sentiric_tts.synthesis.scheduler import EngineScheduler
from sentiric_tts.synthesis.stream import AudioStream
from sentiric_tts.voices.access import LibraryAccess
from sentiric_tts.voices.latent_cache import LatentCache
from sentiric_tts.voices.library_backend import open_library
from sentiric_tts.voices.library_service import LibraryService
from sentiric_tts.voices.voice_store import VoiceStore

log = logging.getLogger(__name__)

_DRAIN_POLL_S = 0.05
CUT_SETTLE_S = 2.0
"""After a shutdown cut, how long the doors get to tell their clients (error events, statuses)."""


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
    draining: bool = field(default=False)
    """Shutdown has begun: readiness says so while in-flight work finishes."""

    @classmethod
    def build(cls, settings: Settings, load: Callable[[Settings], Engine] = load_engine) -> Runtime:
        """`load` makes each engine instance (tests pass one that returns a fake engine)."""
        started = time.perf_counter()
        engines = _engine_instances(settings, load)
        engine = engines[0]
        scheduler = EngineScheduler(
            engines,
            max_jobs=settings.admission.max_queued_requests,
            buffer_chunks=settings.admission.stream_buffer_chunks,
            retry_after_s=settings.admission.retry_after_seconds,
            # Audio counts as a job's output; its segment and pause markers do not.
            is_output=lambda item: isinstance(item, np.ndarray),
            layout=settings.worker_layout(engine.kind),
        )
        # Saved voices: every door reaches them through the catalogue's voice resolution. Embedded
        # or in a shared database (TTS_LIBRARY_URL), with the latent cache's persistent layer.
        backend = open_library(settings)
        latent_cache = LatentCache(backend.latent_shelf, settings.voices.latent_cache_entries)
        metrics = ServiceMetrics(scheduler, latent_cache)
        store = backend.store
        library = LibraryService(
            store,
            engine,
            scheduler,
            latent_cache,
            settings.voices.reference_limits(),
            memory_entries=settings.voices.latent_cache_entries,
        )
        pipeline = _pipeline(settings, engine, scheduler, library, latent_cache, metrics)
        api_keys = settings.security.key_set()
        _log_ownerless_voices(store, api_keys)
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
            api_keys=api_keys,
            limits=settings.admission.client_limits(),
        )

    def admit_client(self, client: str) -> Callable[[], None]:
        """Rate limit and concurrent-request allowance for one client; returns the slot's release."""
        try:
            self.limits.take(client)
            return self.limits.acquire_stream(client)
        except RateLimited as exc:
            self.metrics.refusals.labels(exc.reason).inc()
            raise

    def library_access(self, client: str) -> LibraryAccess:
        """Which library voices a client (as `ApiKeys.identify` named it) may see and use."""
        return self.api_keys.library_access(client)

    def for_client(self, request: SynthesisRequest, client: str) -> SynthesisRequest:
        """The request as the client may make it: with the library voices it may speak with."""
        return dataclasses.replace(request, library_access=self.library_access(client))

    def plan(self, request: SynthesisRequest, client: str) -> SynthesisPlan:
        """Validate and plan a client's request without synthesizing (raises RequestError)."""
        return self.pipeline.plan(self.for_client(request, client))

    async def open_speech(self, request: SynthesisRequest, client: str, door: str) -> AudioStream:
        """What every door calls: admit the client, plan (cloning if asked), start the stream.

        Raises RateLimited, RequestError or ServiceBusy; the client's slot is released when the
        stream ends however it ends."""
        release = self.admit_client(client)
        try:
            audio = await self.start_speech(request, client, door)
        except BaseException:
            release()
            raise
        audio.add_done_callback(lambda _: release())
        return audio

    async def open_speech_as(
        self, request: SynthesisRequest, voice: Voice, client: str, door: str
    ) -> AudioStream:
        """`open_speech`, spoken by `voice` as given (with its conditioning: XTTS latents a client
        sent) rather than by a voice the request names. Plain text only: an SSML <voice> would
        name voices whose conditioning this path does not load."""
        release = self.admit_client(client)
        try:
            plain = dataclasses.replace(self.for_client(request, client), ssml=False)
            audio = self.pipeline.open_stream(self.pipeline.planner.plan(plain, cloned=voice), door=door)
        except BaseException:
            release()
            raise
        audio.add_done_callback(lambda _: release())
        return audio

    async def start_speech(self, request: SynthesisRequest, client: str, door: str) -> AudioStream:
        """Plan (cloning if asked) and admit one request for a client already admitted: a
        WebSocket session takes its client slot once, then speaks sentence after sentence."""
        plan = await self.pipeline.prepare(self.for_client(request, client))
        return self.pipeline.open_stream(plan, door=door)

    def start(self) -> None:
        """Start the worker and warm the engine up; ready afterwards."""
        started = time.perf_counter()
        for engine in self.engines:
            engine.warmup()
        if self.settings.audio.loudness_normalize:
            self.pipeline.calibrate_default_voice()
        self.scheduler.start()
        self.ready = True
        log.info("Warm-up done in %.2f s; ready", time.perf_counter() - started)

    def begin_shutdown(self) -> None:
        """SIGTERM: readiness goes 503 and no new work is admitted; in-flight work goes on.
        Listeners are told once, on the first call."""
        self.ready = False
        self.scheduler.close_admission()
        if self.draining:
            return
        self.draining = True
        log.info("Shutting down: no new requests; in-flight work may finish")
        # A copy: WebSocket sessions add and remove their listeners on the event loop.
        for listener in list(self.shutdown_listeners):
            listener()

    async def drain(self, grace_s: float) -> None:
        """Wait, on the event loop, until no synthesis is in flight or `grace_s` has passed."""
        deadline = time.monotonic() + grace_s
        while self.scheduler.jobs_in_flight and time.monotonic() < deadline:
            await asyncio.sleep(_DRAIN_POLL_S)

    def cut(self) -> None:
        """End what still runs after the drain: each door reports it as its own error."""
        cut = self.scheduler.cut()
        if cut:
            log.warning("Shutdown grace over: cut %d synthesis request(s) still running", cut)

    def stop(self) -> None:
        self.begin_shutdown()
        self.scheduler.stop(drain_s=self.settings.server.shutdown_grace_seconds)
        for engine in self.engines:
            if isinstance(engine, BatchedEngine):
                engine.close()
        # Nothing reads the library once the scheduler has stopped: let its store go (for
        # PostgreSQL, the connection pool that the latent shelf shares).
        self.pipeline.catalogue.library.store.close()


def _engine_instances(settings: Settings, load: Callable[[Settings], Engine]) -> list[Engine]:
    first = load(settings)
    # Further instances of the same engine: the first one decided which engine that is.
    same = settings.model_copy(update={"engines": settings.engines.model_copy(update={"name": first.name})})
    return [first] + [load(same) for _ in range(settings.engines.instances - 1)]


def _pipeline(
    settings: Settings,
    engine: Engine,
    scheduler: EngineScheduler,
    library: LibraryService,
    latent_cache: LatentCache,
    metrics: ServiceMetrics,
) -> SynthesisPipeline:
    catalogue = VoiceCatalogue(
        engine,
        scheduler,
        library,
        latent_cache,
        library.reference_limits,
        default_language=settings.engines.default_language,
        default_voice=settings.engines.default_voice,
    )
    post = settings.audio.post_processing()
    planner = SynthesisPlanner(
        engine,
        catalogue,
        max_text_chars=settings.limits.max_text_chars,
        sample_rates=settings.audio.sample_rates,
        ssml_max_bytes=settings.limits.ssml_max_bytes,
        sentence_pause_s=post.sentence_pause_ms / 1000.0,
        first_segment_chars=settings.first_audio.segment_chars,
        max_audio_seconds=settings.limits.max_audio_seconds,
        max_pause_seconds=settings.limits.max_pause_seconds,
    )
    renderer = Renderer(
        engine,
        scheduler,
        post=post,
        runaway=settings.audio.runaway_guard(),
        metrics=metrics,
        request_timeout_s=settings.admission.request_timeout_seconds,
    )
    return SynthesisPipeline(catalogue, planner, renderer)


def _log_ownerless_voices(store: VoiceStore, api_keys: ApiKeys) -> None:
    ownerless = sum(voice.owner is None for voice in store.list())
    if api_keys.enabled and ownerless:
        log.info(
            "%d library voice(s) have no owner (made while the API was open): only admin keys "
            "(TTS_ADMIN_API_KEYS) see them",
            ownerless,
        )
