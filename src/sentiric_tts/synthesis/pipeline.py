"""The one synthesis pipeline behind every door.

request --plan()--> validated segments --open_stream()--> scheduled engine job
        --> float32 chunks at the engine rate --> stateful resampler --> int16 --> encoder --> bytes

A non-streamed response is the same stream, collected, so streamed and whole output are identical.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass

import anyio
import numpy as np

from sentiric_tts.audio.encoders import OUTPUT_FORMATS, make_encoder
from sentiric_tts.audio.pcm import float_to_int16
from sentiric_tts.audio.reference import ReferenceLimits, load_references
from sentiric_tts.audio.resample import StreamResampler
from sentiric_tts.engines.base import CloningEngine, Engine, Voice, VoiceInfo
from sentiric_tts.synthesis.errors import RequestError
from sentiric_tts.synthesis.request import Segment, SynthesisPlan, SynthesisRequest
from sentiric_tts.synthesis.scheduler import EngineScheduler, JobHandle
from sentiric_tts.synthesis.text import normalize_whitespace, split_for_engine
from sentiric_tts.voices.latent_cache import LatentCache


def _render(engine: Engine, segments: Sequence[Segment]) -> Iterator[np.ndarray]:
    """The engine job for one request: every segment, in order, chunk by chunk."""
    for segment in segments:
        for chunk in engine.synthesize(segment.text, segment.language, segment.voice, segment.params):
            audio = np.asarray(chunk, dtype=np.float32).reshape(-1)
            if audio.size:
                yield np.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0)


@dataclass
class StreamStats:
    """What a finished (or aborted) stream produced, for logs and metrics."""

    started_at: float
    first_audio_at: float | None = None
    finished_at: float | None = None
    output_samples: int = 0

    @property
    def time_to_first_audio_s(self) -> float | None:
        return None if self.first_audio_at is None else self.first_audio_at - self.started_at


class AudioStream:
    """One response's audio: encoded bytes as they are made, or collected into one file."""

    def __init__(self, plan: SynthesisPlan, job: JobHandle) -> None:
        self.plan = plan
        self._job = job
        self._resampler = StreamResampler(plan.engine_rate, plan.sample_rate)
        self._encoder = make_encoder(plan.output_format, plan.sample_rate)
        self.content_type = self._encoder.content_type
        self.file_extension = self._encoder.file_extension
        self.stats = StreamStats(started_at=time.perf_counter())

    def _encode(self, audio: np.ndarray) -> bytes:
        if not audio.size:
            return b""
        if self.stats.first_audio_at is None:
            self.stats.first_audio_at = time.perf_counter()
        self.stats.output_samples += audio.size
        return self._encoder.encode(float_to_int16(audio))

    async def chunks(self) -> AsyncIterator[bytes]:
        """Encoded bytes, header first. Leaving early cancels the engine work."""
        try:
            header = self._encoder.header()
            if header:
                yield header
            async for pcm in self._job:
                assert isinstance(pcm, np.ndarray)
                data = self._encode(self._resampler.process(pcm))
                if data:
                    yield data
            tail = self._encode(self._resampler.flush()) + self._encoder.finish()
            if tail:
                yield tail
            self.stats.finished_at = time.perf_counter()
        finally:
            self._job.cancel()

    async def collect(self) -> bytes:
        """The whole stream as one file (with exact sizes in its header)."""
        parts = [part async for part in self.chunks()]
        return self._encoder.finalize(b"".join(parts))

    def cancel(self) -> None:
        self._job.cancel()

    @property
    def audio_seconds(self) -> float:
        return self.stats.output_samples / self.plan.sample_rate


class SynthesisPipeline:
    def __init__(
        self,
        engine: Engine,
        scheduler: EngineScheduler,
        *,
        default_language: str,
        default_voice: str,
        max_text_chars: int,
        sample_rates: Sequence[int],
        latent_cache: LatentCache,
        reference_limits: ReferenceLimits,
    ) -> None:
        self.engine = engine
        self.scheduler = scheduler
        self.latent_cache = latent_cache
        self.reference_limits = reference_limits
        self.default_language = default_language
        self.default_voice = default_voice or engine.default_voice()
        self.max_text_chars = max_text_chars
        self.sample_rates = tuple(sample_rates)
        self.output_formats = OUTPUT_FORMATS

    # --- catalogue ---

    def voices(self) -> list[VoiceInfo]:
        return self.engine.voices()

    def languages(self) -> list[str]:
        return self.engine.languages()

    # --- validation ---

    def _resolve_voice(self, requested: str | None) -> tuple[Voice, VoiceInfo]:
        wanted = self.default_voice if requested is None or not requested.strip() else requested.strip()
        voices = self.voices()
        for info in voices:
            if info.id == wanted or info.name == wanted:
                return Voice(id=info.id), info
        for info in voices:  # be forgiving about case, never about the voice itself
            if wanted.casefold() in (info.id.casefold(), info.name.casefold()):
                return Voice(id=info.id), info
        ids = [info.id for info in voices]
        shown = ", ".join(ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
        raise RequestError(
            f"Unknown voice '{wanted}'. Available: {shown} (GET /api/speakers lists them all).",
            param="voice",
            code="unknown_voice",
            allowed=ids,
        )

    def _resolve_language(self, requested: str | None, voice: VoiceInfo) -> str:
        supported = list(voice.languages)
        if requested is None or not requested.strip():
            return self.default_language if self.default_language in supported else supported[0]
        code = requested.strip().lower().replace("_", "-")
        if code in supported:
            return code
        primary = code.split("-")[0]
        if primary in supported:
            return primary
        same_primary = [lang for lang in supported if lang.split("-")[0] == primary]
        if len(same_primary) == 1:
            return same_primary[0]
        raise RequestError(
            f"Language '{requested}' is not available for voice '{voice.id}' on the "
            f"{self.engine.name} engine. Available: {', '.join(supported)}.",
            param="language",
            code="unsupported_language",
            allowed=supported,
        )

    def _check_text(self, text: str) -> str:
        cleaned = normalize_whitespace(text)
        if not cleaned:
            raise RequestError(
                "The text is empty: send at least one word to speak.", param="text", code="empty_text"
            )
        if len(cleaned) > self.max_text_chars:
            raise RequestError(
                f"The text is {len(cleaned)} characters long; the limit is {self.max_text_chars}. "
                "Split it into several requests.",
                param="text",
                code="text_too_long",
            )
        if not any(ch.isalnum() for ch in cleaned):
            raise RequestError(
                "The text has nothing to speak (no letters or digits).", param="text", code="empty_text"
            )
        return cleaned

    def _check_output(self, request: SynthesisRequest) -> tuple[str, int]:
        output_format = request.output_format.strip().lower()
        if output_format not in self.output_formats:
            raise RequestError(
                f"Unsupported output format '{request.output_format}'. "
                f"Choose one of: {', '.join(self.output_formats)}.",
                param="output_format",
                code="unsupported_format",
                allowed=self.output_formats,
            )
        if request.sample_rate is None:
            return output_format, self.engine.sample_rate
        if request.sample_rate not in self.sample_rates:
            raise RequestError(
                f"Unsupported sample rate {request.sample_rate} Hz. Choose one of: "
                f"{', '.join(map(str, self.sample_rates))} (or omit it for the engine's "
                f"{self.engine.sample_rate} Hz).",
                param="sample_rate",
                code="unsupported_sample_rate",
                allowed=self.sample_rates,
            )
        return output_format, request.sample_rate

    def plan(self, request: SynthesisRequest, cloned: Voice | None = None) -> SynthesisPlan:
        """Validate a request and cut it into engine segments; raises RequestError.

        `cloned` is a voice made from the request's reference clips (see `prepare`)."""
        text = self._check_text(request.text)
        if cloned is not None:
            voice = cloned
            info = VoiceInfo(cloned.id, cloned.id, "library", tuple(self.engine.languages()))
        else:
            voice, info = self._resolve_voice(request.voice)
        language = self._resolve_language(request.language, info)
        output_format, sample_rate = self._check_output(request)
        max_chars = self.engine.max_segment_chars(language)
        segments = tuple(
            Segment(text=piece, language=language, voice=voice, params=request.params)
            for piece in split_for_engine(text, max_chars)
        )
        return SynthesisPlan(
            segments=segments,
            language=language,
            voice_id=voice.id,
            output_format=output_format,
            sample_rate=sample_rate,
            engine_rate=self.engine.sample_rate,
            characters=len(text),
        )

    async def prepare(self, request: SynthesisRequest) -> SynthesisPlan:
        """`plan`, plus cloning the voice from the request's reference clips when it has any."""
        if not request.references:
            return self.plan(request)
        self.plan(request)  # everything but the references is checked before any decoding
        return self.plan(request, cloned=await self.clone_voice(request.references))

    def _cloning_engine(self) -> CloningEngine:
        if not self.engine.supports_cloning or not isinstance(self.engine, CloningEngine):
            raise RequestError(
                f"Voice cloning needs the XTTS engine; this service runs {self.engine.name}. "
                "Install XTTS v2 weights (see the README) to clone voices.",
                param="files",
                code="cloning_unavailable",
                status=409,
            )
        return self.engine

    async def clone_voice(self, files: Sequence[tuple[str, bytes]]) -> Voice:
        """A voice conditioned on reference clips, from the latent cache when it has them."""
        engine = self._cloning_engine()
        references = await anyio.to_thread.run_sync(load_references, list(files), self.reference_limits)
        key = LatentCache.key(references.digest, engine.fingerprint(), engine.conditioning_tag())
        conditioning = await anyio.to_thread.run_sync(self.latent_cache.get, key, engine.load_conditioning)
        if conditioning is None:
            conditioning = await self.scheduler.call(
                lambda: engine.clone_conditioning(references.clips, references.sample_rate)
            )
            await anyio.to_thread.run_sync(self.latent_cache.put, key, conditioning, engine.dump_conditioning)
        return Voice(id=f"clone-{references.digest[:12]}", conditioning=conditioning)

    # --- rendering ---

    def open_stream(self, plan: SynthesisPlan) -> AudioStream:
        """Admit the plan's engine work (raises ServiceBusy when full) and return its stream."""
        job = self.scheduler.submit(_render(self.engine, plan.segments))
        return AudioStream(plan, job)

    async def synthesize(self, request: SynthesisRequest) -> tuple[SynthesisPlan, bytes]:
        """Plan, render and collect a request in one call (CLI, tests, whole-file doors)."""
        plan = await self.prepare(request)
        return plan, await self.open_stream(plan).collect()
