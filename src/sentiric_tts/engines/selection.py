"""Choosing and loading the engine the settings ask for."""

from __future__ import annotations

import logging

from sentiric_tts.engines.base import Engine
from sentiric_tts.engines.xtts_download import (
    CPML_URL,
    XTTS_FILES,
    DownloadFailed,
    download_xtts_weights,
    weights_present,
)
from sentiric_tts.settings import Settings

log = logging.getLogger(__name__)


class EngineUnavailable(RuntimeError):
    """The configured engine cannot be loaded; the message says what to do."""


def _load_piper(settings: Settings) -> Engine:
    from sentiric_tts.engines.piper import PiperEngine, PiperSessions
    from sentiric_tts.engines.piper_graph import ChunkPlan

    piper, first_frames = settings.piper, settings.first_audio.piper_first_frames
    background_nice, background_idle_class = settings.first_audio.stream_priority()
    sessions = PiperSessions(
        overlap_threads=piper.threads,
        lone_threads=piper.lone_call_threads,
        cpu_arena=piper.cpu_arena,
        background_nice=background_nice,
        background_idle_class=background_idle_class,
        chunks=ChunkPlan(first_frames) if first_frames else None,
    )
    return PiperEngine.load(settings.paths.piper_voices_dir, piper.duration_noise, sessions)


def _load_xtts(settings: Settings) -> Engine:
    try:
        from sentiric_tts.engines.xtts import XttsEngine
    except ImportError as exc:
        raise EngineUnavailable(
            f"The XTTS engine needs the 'xtts' extra (pip install '.[xtts]'): {exc}"
        ) from exc
    xtts = settings.xtts
    return XttsEngine.load(
        settings.paths.xtts_model_dir,
        device=xtts.device,
        dtype=xtts.dtype,
        stream_chunk_size=xtts.stream_chunk_size,
        first_chunk_size=settings.first_audio.xtts_first_chunk_size,
        min_new_tokens=xtts.min_new_tokens,
        max_new_tokens=xtts.max_new_tokens,
        max_batch=xtts.max_batch,
        cuda_graphs=xtts.cuda_graphs,
    )


def _obtain_weights(settings: Settings) -> str | None:
    """Make the XTTS weights present if allowed; None when they are, else why they are not."""
    model_dir = settings.paths.xtts_model_dir
    if weights_present(model_dir):
        return None
    where = model_dir.resolve()
    if not settings.xtts.allow_download:
        return (
            f"No XTTS v2 weights in {where} (put {', '.join(XTTS_FILES)} there, or set "
            "TTS_XTTS_ALLOW_DOWNLOAD=true and TTS_XTTS_ACCEPT_CPML=true to download them)"
        )
    if not settings.xtts.accept_cpml:
        return (
            f"No XTTS v2 weights in {where}; the download is allowed but needs your agreement to "
            f"the Coqui Public Model License ({CPML_URL}): set TTS_XTTS_ACCEPT_CPML=true"
        )
    try:
        download_xtts_weights(settings.xtts.download_url, model_dir)
    except DownloadFailed as exc:
        return f"No XTTS v2 weights in {where} and the download failed ({exc})"
    return None


def load_engine(settings: Settings) -> Engine:
    if settings.engines.name == "piper":
        return _load_piper(settings)
    missing = _obtain_weights(settings)
    if settings.engines.name == "xtts":
        if missing is not None:
            raise EngineUnavailable(f"TTS_ENGINE=xtts but: {missing}. Or set TTS_XTTS_MODEL_DIR.")
        return _load_xtts(settings)
    # auto
    if missing is not None:
        log.info("%s; serving the embedded Piper engine.", missing)
        return _load_piper(settings)
    try:
        return _load_xtts(settings)
    except EngineUnavailable as exc:
        log.warning("XTTS weights found but the engine cannot load (%s); serving Piper.", exc)
        return _load_piper(settings)
