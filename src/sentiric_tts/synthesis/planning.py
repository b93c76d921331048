"""A request made into a validated SynthesisPlan: text or SSML checked, voices and languages
resolved (catalogue.py), text normalised and cut into engine segments with their pauses, and the
audio's length bounded before any engine work."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import anyio

from sentiric_tts.audio.encoders import OUTPUT_FORMATS
from sentiric_tts.engines.base import Engine, Voice
from sentiric_tts.failures import RequestError
from sentiric_tts.synthesis.catalogue import VoiceCatalogue
from sentiric_tts.synthesis.incremental import ends_sentence_ignoring_tags
from sentiric_tts.synthesis.language_id import LanguageDetector
from sentiric_tts.synthesis.normalize import normalize_text
from sentiric_tts.synthesis.render import expected_speech_seconds
from sentiric_tts.synthesis.request import (
    Pause,
    PlanItem,
    Prosody,
    Segment,
    SynthesisPlan,
    SynthesisRequest,
)
from sentiric_tts.synthesis.ssml import SpeechText, SsmlError, looks_like_ssml, parse_ssml
from sentiric_tts.synthesis.text import (
    clause_pause_s,
    clean_text,
    ends_with_sentence_punctuation,
    scrub_code_points,
    split_first_clause,
    split_for_engine,
)

MIN_SPEED, MAX_SPEED = 0.25, 4.0


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


def _pause_before(after_sentence_end: bool, speed: float) -> float | None:
    """The silence before a piece of text: None (the sentence pause) after a sentence end, a
    comma's pause after a cut for length."""
    return None if after_sentence_end else clause_pause_s(speed)


class SynthesisPlanner:
    def __init__(
        self,
        engine: Engine,
        catalogue: VoiceCatalogue,
        *,
        max_text_chars: int,
        sample_rates: Sequence[int],
        ssml_max_bytes: int,
        sentence_pause_s: float,
        first_segment_chars: int = 0,
        max_audio_seconds: float = 600.0,
        max_pause_seconds: float = 60.0,
    ) -> None:
        self.engine = engine
        self.catalogue = catalogue
        self.max_text_chars = max_text_chars
        self.sample_rates = tuple(sample_rates)
        self.output_formats = OUTPUT_FORMATS
        self.ssml_max_bytes = ssml_max_bytes
        self.sentence_pause_s = sentence_pause_s
        self.first_segment_chars = first_segment_chars
        self.max_audio_seconds = max_audio_seconds
        self.max_pause_seconds = max_pause_seconds
        self.language_detector = LanguageDetector(engine.languages())

    # --- checks ---

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

    def _check_length(self, items: Sequence[PlanItem]) -> tuple[float, float]:
        """(estimated speech, planned pauses) in seconds; RequestError past either limit, before
        any engine work."""
        pause_s = planned_pause_seconds(items, self.sentence_pause_s)
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

    # --- planning ---

    def plan(self, request: SynthesisRequest, cloned: Voice | None = None) -> SynthesisPlan:
        """Validate a request and cut it into engine segments; raises RequestError.

        `cloned` is a voice made from the request's reference clips (see `prepare`)."""
        catalogue = self.catalogue
        access = request.library_access
        pieces, ignored, base_language, characters = self._read_text(request)
        if cloned is not None:
            voice, info = cloned, catalogue.cloned_info(cloned)
        else:
            voice, info = catalogue.resolve_voice(request.voice, access)
        if base_language is None and request.detect_language:
            spoken = " ".join(piece.text for piece in pieces if isinstance(piece, SpeechText))
            detected = self.language_detector.detect(spoken)
            base_language = detected if detected in info.languages else None
        if base_language is None:
            base_language = catalogue.own_language(info, access)
        language = catalogue.resolve_language(base_language, info)
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
                (voice, info) if piece.voice is None else catalogue.resolve_voice(piece.voice, access)
            )
            piece_language = (
                language if piece.voice is None else catalogue.resolve_language(language, piece_info)
            )
            if piece.language is not None:
                try:
                    piece_language = catalogue.resolve_language(piece.language, piece_info)
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
                ended = previous is None or ends_with_sentence_punctuation(previous)
                pause = _pause_before(ended, speed)
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

    def pause_after(self, text: str, speed: float) -> float:
        """Seconds of silence after `text` (SSML tags aside) before the text that follows it,
        as within one text: for speech made of several requests (continuous.py)."""
        pause = _pause_before(ends_sentence_ignoring_tags(text), speed)
        return self.sentence_pause_s if pause is None else pause

    async def prepare(self, request: SynthesisRequest) -> SynthesisPlan:
        """`plan`, plus cloning the voice from the request's reference clips when it has any,
        and the conditioning of the library voices it names (loaded, or recomputed after a model
        change), which `plan` alone leaves out."""
        # On a worker thread: planning lists the voice library, which may wait on its database,
        # and the text frontend is CPU work; neither may hold up the event loop's other streams.
        plan = await anyio.to_thread.run_sync(self.plan, request)  # all but the references checked
        if request.references:
            cloned = await self.catalogue.clone_voice(request.references)
            plan = await anyio.to_thread.run_sync(lambda: self.plan(request, cloned=cloned))
        return await self.catalogue.with_library_conditioning(plan, request.library_access)
