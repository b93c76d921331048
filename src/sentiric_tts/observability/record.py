"""Turning a finished synthesis stream into metrics, whichever door it came through."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sentiric_tts.observability.metrics import ServiceMetrics

if TYPE_CHECKING:
    from sentiric_tts.synthesis.stream import AudioStream


def record_stream(metrics: ServiceMetrics, door: str, stream: AudioStream) -> None:
    stats = stream.stats
    metrics.active_streams.dec()
    audio_s = stream.audio_seconds
    if audio_s:
        metrics.audio_seconds.labels(door).inc(audio_s)
    if stream.outcome == "failed":
        metrics.engine_errors.inc()
        return
    if stream.outcome in ("cancelled", "deadline"):
        metrics.cancellations.labels(stream.outcome).inc()
        return
    if stats.finished_at is not None:
        total = stats.finished_at - stats.started_at
        metrics.latency.labels(door).observe(total)
        if audio_s > 0:
            metrics.rtf.labels(door).observe(total / audio_s)
    ttfa = stats.time_to_first_audio_s
    if ttfa is not None:
        metrics.time_to_first_audio.labels(door).observe(ttfa)


def stream_log_fields(stream: AudioStream, seconds: float) -> dict[str, Any]:
    """What a request's access log line says about its speech, whichever door served it."""
    ttfa = stream.stats.time_to_first_audio_s
    audio_s = stream.audio_seconds
    return {
        "voice": stream.plan.voice_id,
        "language": stream.plan.language,
        "chars": stream.plan.characters,
        "format": stream.plan.output_format,
        "rate": stream.plan.sample_rate,
        "audio_s": round(audio_s, 3),
        "ttfa_ms": None if ttfa is None else round(ttfa * 1000),
        "rtf": round(seconds / audio_s, 4) if audio_s else None,
        "outcome": stream.outcome,
    }


def write_access_line(log: logging.Logger, fields: dict[str, Any], level: int = logging.INFO) -> None:
    """One line per request: key=value text, and the same fields for the JSON formatter."""
    log.log(level, " ".join(f"{key}={value}" for key, value in fields.items()), extra={"fields": fields})
