"""Choosing and loading the engine the settings ask for."""

from __future__ import annotations

import logging

from sentiric_tts.engines.base import Engine
from sentiric_tts.settings import Settings

log = logging.getLogger(__name__)

_XTTS_FILES = ("config.json", "model.pth", "vocab.json", "speakers_xtts.pth")


class EngineUnavailable(RuntimeError):
    """The configured engine cannot be loaded; the message says what to do."""


def _xtts_weights_present(settings: Settings) -> bool:
    return all((settings.model_dir / name).is_file() for name in _XTTS_FILES)


def _load_piper(settings: Settings) -> Engine:
    from sentiric_tts.engines.piper import PiperEngine

    return PiperEngine.load(settings.piper_voices_path, settings.piper_duration_noise)


def _load_xtts(settings: Settings) -> Engine:
    try:
        from sentiric_tts.engines.xtts import XttsEngine
    except ImportError as exc:
        raise EngineUnavailable(
            f"The XTTS engine needs the 'xtts' extra (pip install '.[xtts]'): {exc}"
        ) from exc
    return XttsEngine.load(
        settings.model_dir,
        device=settings.xtts_device,
        dtype=settings.xtts_dtype,
        use_deepspeed=settings.xtts_use_deepspeed,
        stream_chunk_size=settings.xtts_stream_chunk_size,
        first_chunk_size=settings.xtts_first_chunk_size,
        min_new_tokens=settings.xtts_min_new_tokens,
        max_new_tokens=settings.xtts_max_new_tokens,
    )


def load_engine(settings: Settings) -> Engine:
    if settings.engine == "piper":
        return _load_piper(settings)
    if settings.engine == "xtts":
        if not _xtts_weights_present(settings):
            raise EngineUnavailable(
                f"TTS_ENGINE=xtts but no XTTS v2 weights in {settings.model_dir.resolve()}: "
                f"put {', '.join(_XTTS_FILES)} there (or set TTS_XTTS_MODEL_DIR)."
            )
        return _load_xtts(settings)
    # auto
    if not _xtts_weights_present(settings):
        log.info(
            "No XTTS v2 weights in %s; serving the embedded Piper engine.",
            settings.model_dir.resolve(),
        )
        return _load_piper(settings)
    try:
        return _load_xtts(settings)
    except EngineUnavailable as exc:
        log.warning("XTTS weights found but the engine cannot load (%s); serving Piper.", exc)
        return _load_piper(settings)
