"""Turning a finished synthesis stream into metrics, whichever door it came through."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
