"""What every door turns a client's call into, and the validated plan made from it."""

from __future__ import annotations

from dataclasses import dataclass, field

from sentiric_tts.engines.base import GenerationParams, Voice


@dataclass(frozen=True)
class SynthesisRequest:
    """A door-independent synthesis request; `None` means "the service default"."""

    text: str
    language: str | None = None
    voice: str | None = None
    params: GenerationParams = field(default_factory=GenerationParams)
    output_format: str = "wav"
    sample_rate: int | None = None


@dataclass(frozen=True)
class Segment:
    """One piece of text the engine renders in a single call."""

    text: str
    language: str
    voice: Voice
    params: GenerationParams


@dataclass(frozen=True)
class SynthesisPlan:
    """A validated request: everything needed to render it, nothing left to check."""

    segments: tuple[Segment, ...]
    language: str
    voice_id: str
    output_format: str
    sample_rate: int
    engine_rate: int
    characters: int
