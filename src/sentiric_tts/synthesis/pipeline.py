"""The one synthesis pipeline behind every door.

request --plan()--> validated items (SSML or text -> normalised segments, pauses, marks)
        --open_stream()--> scheduled engine job (render.py) --> AudioStream (stream.py):
        prosody, joins, loudness, resampling, encoding --> bytes

A non-streamed response is the same stream, collected, so both have the same content and length.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import anyio
import numpy as np

from sentiric_tts.audio.encoders import OUTPUT_FORMATS
from sentiric_tts.audio.loudness import integrated_loudness
from sentiric_tts.audio.reference import ReferenceLimits, load_references
from sentiric_tts.audio.voice_levels import VoiceLevels
from sentiric_tts.engines.base import CloningEngine, Engine, Voice, VoiceInfo
from sentiric_tts.failures import RequestError, ServiceBusy
from sentiric_tts.observability.metrics import ServiceMetrics
from sentiric_tts.observability.record import record_stream
from sentiric_tts.synthesis.language_id import LanguageDetector
from sentiric_tts.synthesis.normalize import normalize_text
from sentiric_tts.synthesis.render import RunawayGuard, expected_speech_seconds, render
from sentiric_tts.synthesis.request import (
    Pause,
    PlanItem,
    Prosody,
    Segment,
    SynthesisPlan,
    SynthesisRequest,
)
from sentiric_tts.synthesis.scheduler import EngineScheduler
from sentiric_tts.synthesis.ssml import SpeechText, SsmlError, looks_like_ssml, parse_ssml
from sentiric_tts.synthesis.stream import AudioStream, PostProcessing
from sentiric_tts.synthesis.text import (
    clause_pause_s,
    clean_text,
    ends_sentence,
    scrub_code_points,
    split_first_clause,
    split_for_engine,
)
from sentiric_tts.voices.access import OPEN_ACCESS, LibraryAccess
from sentiric_tts.voices.cloning import conditioning_from, require_cloning_engine
from sentiric_tts.voices.latent_cache import LatentCache
from sentiric_tts.voices.library_voices import LibraryVoices

MIN_SPEED, MAX_SPEED = 0.25, 4.0
CALIBRATION_TEXT = "Thank you for calling. How can I help you today?"


def planned_pause_seconds(items: Sequence[PlanItem], sentence_pause_s: float) -> float:
    """The silence the stream puts into a plan (AudioStream._joined): breaks before the first and
    after the last segment, and between two segments the breaks there, else the segment's clause
    pause, else the sentence pause."""
    total = 0.0
    pending: float | None = None
    spoken = False
    for item in items:
        if isinstance(item, Pause):
            pending = (pending or 0.0) + item.seconds
        elif isinstance(item, Segment):
            if spoken and pending is None:
                pending = sentence_pause_s if item.pause_before_s is None else item.pause_before_s
            total += pending or 0.0
            pending, spoken = None, True
    return total + (pending or 0.0)


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
        post: PostProcessing,
        runaway: RunawayGuard,
        ssml_max_bytes: int,
        metrics: ServiceMetrics,
        request_timeout_s: float | None = None,
        library: LibraryVoices | None = None,
        first_segment_chars: int = 0,
        max_audio_seconds: float = 600.0,
        max_pause_seconds: float = 60.0,
    ) -> None:
        self.max_audio_seconds = max_audio_seconds
        self.max_pause_seconds = max_pause_seconds
        self.library = library
        self.metrics = metrics
        self.request_timeout_s = request_timeout_s
        self.post = post
        self.voice_levels = VoiceLevels()
        self.runaway = runaway
        self.ssml_max_bytes = ssml_max_bytes
        self.engine = engine
        self.scheduler = scheduler
        self.latent_cache = latent_cache
        self.reference_limits = reference_limits
        self.default_language = default_language
        self.default_voice = default_voice or engine.default_voice()
        self.max_text_chars = max_text_chars
        self.first_segment_chars = first_segment_chars
        self.sample_rates = tuple(sample_rates)
        self.output_formats = OUTPUT_FORMATS
        self.language_detector = LanguageDetector(engine.languages())

    # --- catalogue ---

    def voices(self, access: LibraryAccess) -> list[VoiceInfo]:
        """The engine's voices and the library voices `access` may see."""
        # Library voices are listed only where they can be spoken (a cloning engine).
        library = self.library.infos(access) if self.library is not None and self.library.usable else []
        return self.engine.voices() + library

    def languages(self) -> list[str]:
        return self.engine.languages()

    # --- validation ---

    def _resolve_voice(self, requested: str | None, access: LibraryAccess) -> tuple[Voice, VoiceInfo]:
        wanted = self.default_voice if requested is None or not requested.strip() else requested.strip()
        voices = self.voices(access)
        for info in voices:
            if info.id == wanted or info.name == wanted:
                return Voice(id=info.id), info
        for info in voices:  # be forgiving about case, never about the voice itself
            if wanted.casefold() in (info.id.casefold(), info.name.casefold()):
                return Voice(id=info.id), info
        if self.library is not None and self.library.find(wanted, access) is not None:
            require_cloning_engine(self.engine, param="voice")  # a library voice, on Piper: 409
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
        cleaned = clean_text(text)
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

    def _read_text(self, request: SynthesisRequest) -> tuple[list[object], tuple[str, ...], str | None, int]:
        """(speech pieces, pauses and marks; ignored SSML tags; language the text names; length)."""
        is_ssml = looks_like_ssml(request.text) if request.ssml is None else request.ssml
        if not is_ssml:
            text = self._check_text(request.text)
            return [SpeechText(text, None, None, Prosody())], (), request.language, len(text)
        try:
            document = parse_ssml(scrub_code_points(request.text), max_bytes=self.ssml_max_bytes)
        except SsmlError as exc:
            raise RequestError(f"Invalid SSML: {exc}", param="text", code="invalid_ssml") from exc
        spoken = " ".join(item.text for item in document.items if isinstance(item, SpeechText))
        characters = len(self._check_text(spoken))  # something to say, under the length limit
        return list(document.items), document.ignored_tags, request.language or document.language, characters

    def plan(self, request: SynthesisRequest, cloned: Voice | None = None) -> SynthesisPlan:
        """Validate a request and cut it into engine segments; raises RequestError.

        `cloned` is a voice made from the request's reference clips (see `prepare`)."""
        pieces, ignored, base_language, characters = self._read_text(request)
        if cloned is not None:
            voice = cloned
            info = VoiceInfo(cloned.id, cloned.id, "library", tuple(self.engine.languages()))
        else:
            voice, info = self._resolve_voice(request.voice, request.library_access)
        if base_language is None and request.detect_language:
            spoken = " ".join(piece.text for piece in pieces if isinstance(piece, SpeechText))
            detected = self.language_detector.detect(spoken)
            base_language = detected if detected in info.languages else None
        if base_language is None and info.kind == "library" and self.library is not None:
            found = self.library.find(info.id, request.library_access)  # the voice's own language
            base_language = found.language if found is not None else None
        language = self._resolve_language(base_language, info)
        output_format, sample_rate = self._check_output(request)

        items: list[PlanItem] = []
        # The request's first audio waits for its first segment, whole on an engine that renders
        # a segment at once: a long opening sentence is cut after its first clause.
        first_cut = (
            0 if self.engine.streams_within_segment or not request.opens_speech else self.first_segment_chars
        )
        # The text spoken last, across SSML elements: an element inside a sentence (emphasis,
        # prosody, mark, voice) is joined to it with a comma's pause, not a sentence's.
        previous: str | None = None
        for piece in pieces:
            if not isinstance(piece, SpeechText):
                items.append(piece)  # type: ignore[arg-type]  # Pause or Mark
                continue
            piece_voice, piece_info = (
                (voice, info)
                if piece.voice is None
                else self._resolve_voice(piece.voice, request.library_access)
            )
            piece_language = language if piece.voice is None else self._resolve_language(language, piece_info)
            if piece.language is not None:
                try:
                    piece_language = self._resolve_language(piece.language, piece_info)
                except RequestError:
                    # <lang> switches only where the engine has the language; otherwise the text
                    # is read in the surrounding language, and the response says so.
                    if f"lang:{piece.language}" not in ignored:
                        ignored = (*ignored, f"lang:{piece.language}")
            speed = min(MAX_SPEED, max(MIN_SPEED, request.params.speed * piece.prosody.rate))
            params = dataclasses.replace(request.params, speed=speed)
            spoken = normalize_text(piece.text, piece_language)
            pieces_of_text = split_for_engine(spoken, self.engine.max_segment_chars(piece_language))
            if pieces_of_text and not any(isinstance(item, Segment) for item in items):
                pieces_of_text[:1] = split_first_clause(pieces_of_text[0], first_cut)
            for text in pieces_of_text:
                pause = None if previous is None or ends_sentence(previous) else clause_pause_s(speed)
                items.append(Segment(text, piece_language, piece_voice, params, piece.prosody, pause))
                previous = text
        speech_s, pause_s = self._check_length(items)
        return SynthesisPlan(
            items=tuple(items),
            language=language,
            voice_id=voice.id,
            output_format=output_format,
            sample_rate=sample_rate,
            engine_rate=self.engine.sample_rate,
            characters=characters,
            volume_gain_db=request.volume_gain_db,
            ignored_tags=ignored,
            speech_seconds=speech_s,
            pause_seconds=pause_s,
            max_audio_seconds=self.max_audio_seconds,
        )

    def _check_length(self, items: Sequence[PlanItem]) -> tuple[float, float]:
        """(estimated speech, planned pauses) in seconds; RequestError past either limit, before
        any engine work."""
        pause_s = planned_pause_seconds(items, self.post.sentence_pause_ms / 1000.0)
        if pause_s > self.max_pause_seconds:
            raise RequestError(
                f"The pauses in this request add up to {pause_s:.1f} s; the limit is "
                f"{self.max_pause_seconds:g} s per request (TTS_MAX_PAUSE_SECONDS). Use fewer or shorter "
                "breaks, or split the text into several requests.",
                param="text",
                code="pauses_too_long",
            )
        speech_s = sum(expected_speech_seconds(item) for item in items if isinstance(item, Segment))
        if speech_s + pause_s > self.max_audio_seconds:
            raise RequestError(
                f"This request would make about {speech_s + pause_s:.1f} s of audio; the limit is "
                f"{self.max_audio_seconds:g} s per request (TTS_MAX_AUDIO_SECONDS). Split the text into "
                "several requests, or speak faster.",
                param="text",
                code="audio_too_long",
            )
        return speech_s, pause_s

    async def prepare(self, request: SynthesisRequest) -> SynthesisPlan:
        """`plan`, plus cloning the voice from the request's reference clips when it has any,
        and the conditioning of the library voices it names (loaded, or recomputed after a model
        change), which `plan` alone leaves out."""
        plan = self.plan(request)  # everything but the references is checked before any decoding
        if request.references:
            plan = self.plan(request, cloned=await self.clone_voice(request.references))
        return await self._with_library_conditioning(plan, request.library_access)

    async def _with_library_conditioning(self, plan: SynthesisPlan, access: LibraryAccess) -> SynthesisPlan:
        library = self.library
        if library is None:
            return plan
        wanted = {
            item.voice.id
            for item in plan.segments
            if item.voice.conditioning is None and library.find(item.voice.id, access) is not None
        }
        if not wanted:
            return plan
        voices = {
            voice_id: Voice(voice_id, await library.conditioning(voice_id)) for voice_id in sorted(wanted)
        }
        items = tuple(
            dataclasses.replace(item, voice=voices[item.voice.id])
            if isinstance(item, Segment) and item.voice.id in voices and item.voice.conditioning is None
            else item
            for item in plan.items
        )
        return dataclasses.replace(plan, items=items)

    def _cloning_engine(self) -> CloningEngine:
        return require_cloning_engine(self.engine)

    async def clone_voice(self, files: Sequence[tuple[str, bytes]]) -> Voice:
        """A voice conditioned on reference clips, from the latent cache when it has them."""
        engine = self._cloning_engine()
        references = await anyio.to_thread.run_sync(load_references, list(files), self.reference_limits)
        conditioning = await conditioning_from(references, engine, self.scheduler, self.latent_cache)
        return Voice(id=f"clone-{references.digest[:12]}", conditioning=conditioning)

    # --- rendering ---

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

    def calibrate_default_voice(self) -> None:
        """Measure the default voice's level once at start (engine called directly, before the
        worker runs), so even the first stream gets its loudness gain from its first sample."""
        plan = self.plan(SynthesisRequest(text=CALIBRATION_TEXT))
        if self.library is not None and self.library.find(plan.voice_id, OPEN_ACCESS) is not None:
            return  # a library voice's latents load through the scheduler, which is not running yet
        pieces = [
            item for item in render(self.engine, plan.items, self.runaway) if isinstance(item, np.ndarray)
        ]
        if pieces:
            self.voice_levels.update(
                plan.voice_id, integrated_loudness(np.concatenate(pieces), plan.engine_rate)
            )

    async def synthesize(self, request: SynthesisRequest) -> tuple[SynthesisPlan, bytes]:
        """Plan, render and collect a request in one call (CLI, tests, whole-file doors)."""
        plan = await self.prepare(request)
        return plan, await self.open_stream(plan).collect()
