"""A plan made into audio: its engine job (render.py) admitted by the scheduler and wrapped in the
stream (stream.py) that post-processes and encodes it; and the default voice's level measured at
start, so that loudness normalisation is right from a stream's first sample."""

from __future__ import annotations

import numpy as np

from sentiric_tts.audio.loudness import integrated_loudness
from sentiric_tts.audio.voice_levels import VoiceLevels
from sentiric_tts.engines.base import Engine
from sentiric_tts.failures import ServiceBusy
from sentiric_tts.observability.metrics import ServiceMetrics
from sentiric_tts.observability.record import record_stream
from sentiric_tts.synthesis.render import RunawayGuard, render
from sentiric_tts.synthesis.request import SynthesisPlan
from sentiric_tts.synthesis.scheduler import EngineScheduler
from sentiric_tts.synthesis.stream import AudioStream, PostProcessing


class Renderer:
    def __init__(
        self,
        engine: Engine,
        scheduler: EngineScheduler,
        *,
        post: PostProcessing,
        runaway: RunawayGuard,
        metrics: ServiceMetrics,
        request_timeout_s: float | None = None,
    ) -> None:
        self.engine = engine
        self.scheduler = scheduler
        self.post = post
        self.runaway = runaway
        self.metrics = metrics
        self.request_timeout_s = request_timeout_s
        self.voice_levels = VoiceLevels()

    def open_stream(self, plan: SynthesisPlan, door: str = "http") -> AudioStream:
        """Admit the plan's engine work (raises ServiceBusy when full) and return its stream."""
        try:
            budget_s = None if plan.max_audio_seconds is None else plan.max_audio_seconds - plan.pause_seconds
            job = self.scheduler.submit(
                lambda engine, state: render(
                    engine, plan.items, self.runaway, budget_s, lambda: state.awaited
                )
            )
        except ServiceBusy:
            self.metrics.refusals.labels("queue_full").inc()
            raise
        stream = AudioStream(plan, job, self.post, self.voice_levels, self.request_timeout_s)
        self.metrics.active_streams.inc()
        stream.add_done_callback(lambda finished: record_stream(self.metrics, door, finished))
        return stream

    def calibrate(self, plan: SynthesisPlan) -> None:
        """Measure the level of the plan's voice on the engine directly, before the scheduler's
        worker runs (so the plan's voices need no conditioning loaded through it)."""
        pieces = [
            item for item in render(self.engine, plan.items, self.runaway) if isinstance(item, np.ndarray)
        ]
        if pieces:
            self.voice_levels.update(
                plan.voice_id, integrated_loudness(np.concatenate(pieces), plan.engine_rate)
            )
