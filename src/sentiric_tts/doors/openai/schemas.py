"""Bodies of the OpenAI-compatible API (`/v1/...`), shaped as OpenAI's SDKs send and expect them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sentiric_tts.doors.http.schemas import GenerationFields

SPEECH_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "sentiric-tts")
"""Model names /v1/audio/speech accepts. Every one speaks with the running engine: clients such
as Open WebUI only let users pick among OpenAI's names."""

OPENAI_PCM_RATE = 24000
"""OpenAI's `pcm` is 24 kHz s16le; clients play it at that rate without asking."""


class SpeechBody(GenerationFields):
    """POST /v1/audio/speech. OpenAI's fields, plus ours (sent by the SDKs as `extra_body`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"model": "tts-1", "input": "Hello there!", "voice": "alloy"}]},
    )

    model: str = Field(..., description=f"One of: {', '.join(SPEECH_MODELS)} (all use the running engine).")
    input: str = Field(..., description="Text (or SSML) to speak.")
    voice: str | dict[str, Any] = Field(
        ...,
        description="An OpenAI voice name (alloy, echo, fable, onyx, nova, shimmer, ...; mapped by "
        "TTS_OPENAI_VOICE_MAP), a built-in speaker, or a voice library id; also {'id': ...}.",
    )
    response_format: str = Field(
        "mp3",
        description="mp3, opus, aac, flac, wav or pcm (24 kHz s16le, as OpenAI's); "
        "also mulaw, alaw, wav_mulaw, wav_alaw.",
    )
    instructions: str | None = Field(
        None,
        description="Accepted for compatibility; the engines have no instruction control.",
        max_length=4096,
    )
    stream_format: Literal["audio", "sse"] = Field(
        "audio", description="audio: the audio bytes as they are made; sse: base64 audio delta events."
    )
    # Ours, beyond OpenAI's:
    language: str | None = Field(None, description="Language code; default: detected from the text.")
    sample_rate: int | None = Field(None, description="Output rate in Hz; default: native (pcm: 24000).")
    volume_gain_db: float = Field(
        0.0, ge=-30.0, le=20.0, description="Gain on top of loudness normalisation."
    )
    text_type: Literal["text", "ssml"] | None = Field(
        None, description="Default: SSML when it starts <speak>."
    )

    @field_validator("voice")
    @classmethod
    def _voice_id(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        if isinstance(value, dict) and not isinstance(value.get("id"), str):
            raise ValueError("a voice object needs a string 'id'")
        return value

    @property
    def voice_name(self) -> str:
        return self.voice if isinstance(self.voice, str) else str(self.voice["id"])


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "sentiric"


class ModelListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


class AudioModelOut(BaseModel):
    id: str


class AudioModelsOut(BaseModel):
    models: list[AudioModelOut]


class AudioVoiceOut(BaseModel):
    id: str
    name: str
    kind: str
    languages: list[str]


class AudioVoicesOut(BaseModel):
    voices: list[AudioVoiceOut]
