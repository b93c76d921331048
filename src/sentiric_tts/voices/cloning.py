"""Speaker conditioning from reference clips, shared by one-off clones and library voices."""

from __future__ import annotations

import anyio

from sentiric_tts.audio.reference import ReferenceAudio
from sentiric_tts.engines.base import CloningEngine, Engine
from sentiric_tts.failures import Failure, RequestError
from sentiric_tts.synthesis.scheduler import EngineScheduler
from sentiric_tts.voices.latent_cache import LatentCache


def require_cloning_engine(engine: Engine, param: str = "files") -> CloningEngine:
    """The engine as a cloning engine; RequestError 409 when it cannot clone (Piper)."""
    if not engine.supports_cloning or not isinstance(engine, CloningEngine):
        raise RequestError(
            f"Voice cloning needs the XTTS engine; this service runs {engine.name}. "
            "Install XTTS v2 weights (see the README) to clone voices.",
            param=param,
            code="cloning_unavailable",
            kind=Failure.CONFLICT,
        )
    return engine


def model_tag(engine: CloningEngine) -> str:
    """What conditioning depends on besides the clips: the model and its conditioning settings."""
    return f"{engine.fingerprint()}|{engine.conditioning_tag()}"


async def conditioning_from(
    references: ReferenceAudio, engine: CloningEngine, scheduler: EngineScheduler, cache: LatentCache
) -> object:
    """Conditioning for these clips: from the latent cache, else computed on an engine worker
    (admitted like any job, so cloning never runs beside synthesis on the same model)."""
    key = LatentCache.key(references.digest, engine.fingerprint(), engine.conditioning_tag())
    conditioning = await anyio.to_thread.run_sync(cache.get, key, engine.load_conditioning)
    if conditioning is None:
        conditioning = await scheduler.call(
            lambda instance: instance.clone_conditioning(references.clips, references.sample_rate)
        )
        await anyio.to_thread.run_sync(cache.put, key, conditioning, engine.dump_conditioning)
    return conditioning
