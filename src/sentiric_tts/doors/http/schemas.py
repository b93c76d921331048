"""Request and response bodies of the native HTTP API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sentiric_tts.engines.base import GenerationParams
from sentiric_tts.synthesis.request import SynthesisRequest


class GenerationFields(BaseModel):
    """Speed and sampling options, shared by every synthesis body."""

    speed: float = Field(1.0, ge=0.25, le=4.0, description="Speaking rate; 1 is normal. Every engine.")
    temperature: float | None = Field(
        None, gt=0.0, le=2.0, description="Sampling temperature (XTTS only; Piper ignores it)."
    )
    top_k: int | None = Field(None, ge=1, le=1000, description="Top-k sampling (XTTS only).")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus sampling (XTTS only).")
    repetition_penalty: float | None = Field(
        None, ge=1.0, le=50.0, description="Repetition penalty (XTTS only)."
    )

    def generation_params(self) -> GenerationParams:
        return GenerationParams(
            speed=self.speed,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            repetition_penalty=self.repetition_penalty,
        )


class OutputFields(BaseModel):
    output_format: str = Field(
        "wav",
        description="Audio format: wav, pcm (raw s16le), mulaw, alaw (raw G.711), wav_mulaw, "
        "wav_alaw (G.711 in WAV), mp3, opus (Ogg), aac (ADTS), flac.",
    )
    volume_gain_db: float = Field(
        0.0, ge=-30.0, le=20.0, description="Gain in dB on top of loudness normalisation."
    )
    sample_rate: int | None = Field(
        None,
        description="Output rate in Hz: 8000, 16000, 22050, 24000, 32000, 44100 or 48000. "
        "Omit for the engine's native rate.",
    )
    stream: bool = Field(False, description="Send audio as it is made (chunked transfer).")


class TTSRequestBody(GenerationFields, OutputFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"text": "Hello! This is the Sentiric text to speech service.", "language": "en"}]
        },
    )

    text: str = Field(..., description="Text or SSML to speak.", examples=["Hello world."])
    text_type: Literal["text", "ssml"] | None = Field(
        None, description="How to read `text`; default: SSML when it starts with <speak>, else text."
    )
    language: str | None = Field(None, description="Language code, e.g. en. Default: the service's.")
    voice: str | None = Field(None, description="Voice id (see GET /api/speakers).")
    speaker_idx: str | None = Field(None, description="Alias of `voice`, for XTTS-server clients.")

    @model_validator(mode="after")
    def _one_voice(self) -> TTSRequestBody:
        if self.voice and self.speaker_idx and self.voice != self.speaker_idx:
            raise ValueError("give the voice once: `voice` and `speaker_idx` differ")
        return self

    def to_request(self) -> SynthesisRequest:
        return SynthesisRequest(
            text=self.text,
            language=self.language,
            voice=self.voice or self.speaker_idx,
            params=self.generation_params(),
            output_format=self.output_format,
            sample_rate=self.sample_rate,
            ssml=None if self.text_type is None else self.text_type == "ssml",
            volume_gain_db=self.volume_gain_db,
        )


class CloneForm(GenerationFields, OutputFields):
    """Form fields of POST /api/tts/clone (the clips come as `files`)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(..., description="Text or SSML to speak.")
    text_type: Literal["text", "ssml"] | None = Field(None, description="As in POST /api/tts.")
    language: str | None = Field(None, description="Language code, e.g. en.")

    @model_validator(mode="before")
    @classmethod
    def _without_files(cls, data: object) -> object:
        # The clips arrive in the same multipart body; they are read separately as uploads.
        if isinstance(data, dict) and "files" in data:
            return {key: value for key, value in data.items() if key != "files"}
        return data

    def to_request(self, references: tuple[tuple[str, bytes], ...]) -> SynthesisRequest:
        return SynthesisRequest(
            text=self.text,
            language=self.language,
            params=self.generation_params(),
            output_format=self.output_format,
            sample_rate=self.sample_rate,
            references=references,
            ssml=None if self.text_type is None else self.text_type == "ssml",
            volume_gain_db=self.volume_gain_db,
        )


class PlanItemOut(BaseModel):
    type: Literal["speech", "pause", "mark"]
    text: str | None = None
    language: str | None = None
    voice: str | None = None
    speed: float | None = Field(None, description="Effective speed: request speed x SSML rate.")
    rate: float | None = Field(None, description="SSML rate multiplier.")
    pitch_semitones: float | None = None
    volume_db: float | None = None
    seconds: float | None = Field(None, description="Length of a pause.")
    name: str | None = Field(None, description="Name of a mark.")


class PlanOut(BaseModel):
    language: str
    voice: str
    characters: int
    output_format: str
    sample_rate: int
    ignored_tags: list[str]
    audio_seconds: float = Field(
        description="Estimated length of the audio, pauses included: what TTS_MAX_AUDIO_SECONDS is "
        "checked against."
    )
    pause_seconds: float = Field(
        description="Silence the plan puts in (breaks, sentence and clause pauses): what "
        "TTS_MAX_PAUSE_SECONDS is checked against."
    )
    items: list[PlanItemOut]


class VoiceOut(BaseModel):
    id: str
    name: str
    kind: str
    languages: list[str]
    description: str = ""


class SpeakersOut(BaseModel):
    default: str
    voices: list[VoiceOut]


class LanguagesOut(BaseModel):
    default: str
    languages: list[str]


class EngineThreadsOut(BaseModel):
    """How engine work is spread over threads (see the scheduling settings)."""

    instances: int
    stream_workers: int = Field(description="Threads per instance that continue streams.")
    first_audio_workers: int = Field(description="Threads per instance that only start requests.")
    stream_worker_nice: int = Field(description="How much lower the stream threads' OS priority is.")
    stream_worker_idle_class: bool = Field(description="Whether stream threads are in SCHED_IDLE.")
    kind: str = Field(
        description="thread: calls render on these threads (Piper); batched: the engine's own loop "
        "advances every sentence in one step and the threads wait on it (XTTS)."
    )
    max_batch: int | None = Field(None, description="Sentences a batched engine advances together.")
    graph_batch_sizes: list[int] = Field(
        default_factory=list,
        description="Batch sizes whose decode step replays a captured CUDA graph (empty: eager steps).",
    )


class ConfigOut(BaseModel):
    engine: str
    device: str
    native_sample_rate: int
    supports_cloning: bool
    default_language: str
    default_voice: str
    output_formats: list[str]
    sample_rates: list[int]
    max_text_chars: int
    max_queued_requests: int
    engine_threads: EngineThreadsOut


class LatentCacheOut(BaseModel):
    entries: int
    hits: int
    misses: int
    disk_hits: int


class StatusOut(BaseModel):
    ready: bool
    engine: str
    device: str
    jobs_in_flight: int
    max_queued_requests: int
    latent_cache: LatentCacheOut


class ErrorDetail(BaseModel):
    code: str
    message: str
    param: str | None = None
    allowed: list[object] | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


class HealthOut(BaseModel):
    status: str
    engine: str | None = None


class LibrarySampleOut(BaseModel):
    id: str
    filename: str
    seconds: float = Field(description="Length of the clip as used for cloning (silence trimmed).")


class LibraryVoiceOut(BaseModel):
    """A voice saved in the voice library (cloned from its samples)."""

    id: str
    name: str
    kind: Literal["library"] = "library"
    languages: list[str]
    language: str | None = Field(
        None, description="The voice's own language, used when a request names none."
    )
    description: str
    created_at: str = Field(description="ISO-8601, UTC.")
    updated_at: str = Field(description="ISO-8601, UTC.")
    samples: list[LibrarySampleOut]


class VoicesOut(BaseModel):
    default: str
    voices: list[VoiceOut | LibraryVoiceOut] = Field(
        description="The engine's own voices (kind studio or piper), then the library's (kind library)."
    )


class VoicePatchBody(BaseModel):
    """Fields to change; those left out stay as they are (`language`: null clears it)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="1-64 characters, unique (case-insensitive).")
    description: str | None = Field(None, description="Free text, up to 500 characters.")
    language: str | None = Field(None, description="The voice's own language; null clears it.")
