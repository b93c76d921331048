"""What the service offers: voices, languages, configuration."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from sentiric_tts.doors.http.deps import client_identity, get_runtime
from sentiric_tts.doors.http.schemas import (
    ConfigOut,
    EngineThreadsOut,
    LanguagesOut,
    LatentCacheOut,
    SpeakersOut,
    StatusOut,
    VoiceOut,
)
from sentiric_tts.engines.base import BatchedEngine
from sentiric_tts.runtime import Runtime

router = APIRouter(prefix="/api", tags=["catalogue"], dependencies=[Depends(client_identity)])


@router.get("/speakers", response_model=SpeakersOut, summary="Voices this engine can speak with")
async def speakers(
    runtime: Runtime = Depends(get_runtime), client: str = Depends(client_identity)
) -> SpeakersOut:
    catalogue = runtime.pipeline.catalogue
    return SpeakersOut(
        default=catalogue.default_voice,
        voices=[
            VoiceOut(
                id=v.id, name=v.name, kind=v.kind, languages=list(v.languages), description=v.description
            )
            for v in catalogue.voices(runtime.library_access(client))
        ],
    )


@router.get("/languages", response_model=LanguagesOut, summary="Languages this engine speaks")
async def languages(runtime: Runtime = Depends(get_runtime)) -> LanguagesOut:
    catalogue = runtime.pipeline.catalogue
    return LanguagesOut(default=catalogue.default_language, languages=catalogue.languages())


@router.get("/config", response_model=ConfigOut, summary="Engine, defaults and limits")
async def config(runtime: Runtime = Depends(get_runtime)) -> ConfigOut:
    catalogue, planner, settings = runtime.pipeline.catalogue, runtime.pipeline.planner, runtime.settings
    layout = runtime.scheduler.layout
    engine = runtime.engine
    return ConfigOut(
        engine=engine.name,
        device=engine.device,
        native_sample_rate=engine.sample_rate,
        supports_cloning=engine.supports_cloning,
        default_language=catalogue.default_language,
        default_voice=catalogue.default_voice,
        output_formats=list(planner.output_formats),
        sample_rates=list(planner.sample_rates),
        max_text_chars=planner.max_text_chars,
        max_queued_requests=settings.admission.max_queued_requests,
        engine_threads=EngineThreadsOut(
            instances=len(runtime.engines),
            stream_workers=layout.stream_workers,
            first_audio_workers=layout.first_audio_workers,
            stream_worker_nice=layout.applied_stream_nice,
            stream_worker_idle_class=layout.applied_idle_class,
            kind=engine.kind,
            max_batch=engine.max_batch if isinstance(engine, BatchedEngine) else None,
            graph_batch_sizes=engine.graph_batch_sizes() if isinstance(engine, BatchedEngine) else [],
        ),
    )


@router.get("/status", response_model=StatusOut, summary="Live state: readiness and queue depth")
async def status(runtime: Runtime = Depends(get_runtime)) -> StatusOut:
    cache = runtime.pipeline.catalogue.latent_cache
    return StatusOut(
        ready=runtime.ready,
        engine=runtime.engine.name,
        device=runtime.engine.device,
        jobs_in_flight=runtime.scheduler.jobs_in_flight,
        max_queued_requests=runtime.settings.admission.max_queued_requests,
        latent_cache=LatentCacheOut(
            entries=cache.entries, hits=cache.hits, misses=cache.misses, disk_hits=cache.disk_hits
        ),
    )
