"""The one synthesis pipeline behind every door: its three parts, composed.

request --VoiceCatalogue (catalogue.py)--> which voices, languages, cloned or library conditioning
        --SynthesisPlanner (planning.py)--> validated plan (SSML or text -> segments, pauses, marks)
        --Renderer (renderer.py)--> scheduled engine job --> AudioStream (stream.py): prosody,
        joins, loudness, resampling, encoding --> bytes

A non-streamed response is the same stream, collected, so both have the same content and length.
Doors call the pipeline for speech and its catalogue for what may be asked of it.
"""

from __future__ import annotations

from sentiric_tts.synthesis.catalogue import VoiceCatalogue
from sentiric_tts.synthesis.continuous import ContinuousSpeech
from sentiric_tts.synthesis.planning import SynthesisPlanner
from sentiric_tts.synthesis.renderer import Renderer
from sentiric_tts.synthesis.request import SynthesisPlan, SynthesisRequest
from sentiric_tts.synthesis.stream import AudioStream
from sentiric_tts.voices.access import OPEN_ACCESS

CALIBRATION_TEXT = "Thank you for calling. How can I help you today?"


class SynthesisPipeline:
    def __init__(self, catalogue: VoiceCatalogue, planner: SynthesisPlanner, renderer: Renderer) -> None:
        self.catalogue = catalogue
        self.planner = planner
        self.renderer = renderer

    def plan(self, request: SynthesisRequest) -> SynthesisPlan:
        """Validate a request and cut it into engine segments, without synthesizing; raises
        RequestError."""
        return self.planner.plan(request)

    async def prepare(self, request: SynthesisRequest) -> SynthesisPlan:
        """`plan`, with the request's cloned voice and its library voices' conditioning."""
        return await self.planner.prepare(request)

    def open_stream(self, plan: SynthesisPlan, door: str = "http") -> AudioStream:
        """Admit the plan's engine work (raises ServiceBusy when full) and return its stream."""
        return self.renderer.open_stream(plan, door)

    def open_continuous(
        self, template: SynthesisRequest, *, door: str, max_pending_chars: int | None = None
    ) -> ContinuousSpeech:
        """Speech from text that arrives in pieces, as one continuous stream (continuous.py);
        `template` fixes everything but the text. RequestError when the template is invalid."""
        return ContinuousSpeech(
            self.planner, self.renderer, template, door=door, max_pending_chars=max_pending_chars
        )

    async def synthesize(self, request: SynthesisRequest) -> tuple[SynthesisPlan, bytes]:
        """Plan, render and collect a request in one call (CLI, tests, whole-file doors)."""
        plan = await self.prepare(request)
        return plan, await self.open_stream(plan).collect()

    def calibrate_default_voice(self) -> None:
        """Measure the default voice's level once at start, so even the first stream gets its
        loudness gain from its first sample."""
        plan = self.plan(SynthesisRequest(text=CALIBRATION_TEXT))
        if self.catalogue.is_library_voice(plan.voice_id, OPEN_ACCESS):
            return  # a library voice's latents load through the scheduler, which is not running yet
        self.renderer.calibrate(plan)
