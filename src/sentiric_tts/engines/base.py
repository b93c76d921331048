"""The protocol every synthesis engine implements.

Engines know nothing about HTTP, SSML, formats or resampling: they take one text segment, a
language, a voice and generation parameters, and yield float32 mono PCM at their native rate.
Everything else (splitting, scheduling, resampling, encoding) is the pipeline's job.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

VoiceKind = Literal["piper", "studio", "library"]


@dataclass(frozen=True)
class VoiceInfo:
    """A voice as clients see it in listings."""

    id: str
    name: str
    kind: VoiceKind
    languages: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class Voice:
    """What an engine synthesizes with.

    `conditioning` carries engine-specific speaker conditioning for cloned voices (for XTTS: the
    GPT conditioning latents and the speaker embedding); it is None for an engine's own voices.
    """

    id: str
    conditioning: object | None = None


@dataclass(frozen=True)
class GenerationParams:
    """Per-request generation parameters. None means "the engine's default"."""

    speed: float = 1.0
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


class EngineError(RuntimeError):
    """The engine failed while synthesizing (not the client's fault)."""


@runtime_checkable
class Engine(Protocol):
    """A loaded synthesis engine. Implementations must be safe to call from one worker thread."""

    name: str
    """Short engine name: "piper", "xtts"."""

    sample_rate: int
    """Native output rate of `synthesize`, in Hz."""

    device: str
    """Where it runs: "cpu", "cuda:0"."""

    supports_cloning: bool

    parallel_calls: bool
    """Whether `synthesize` may run on several threads at once, each call on its own CPU core(s)
    (Piper); a GPU model is advanced by one thread per instance."""

    streams_within_segment: bool
    """Whether `synthesize` yields audio before the whole segment is rendered (XTTS decodes
    every few tokens, Piper decodes a sentence in pieces); if not (Piper with pieces off), a
    segment's first audio costs its whole length, and the pipeline cuts a request's opening
    sentence short."""

    def languages(self) -> list[str]:
        """Language codes this engine can speak (ISO 639-1 style, e.g. "en", "zh-cn")."""
        ...

    def voices(self) -> list[VoiceInfo]:
        """The engine's own voices (built-in speakers, Piper voice files)."""
        ...

    def default_voice(self) -> str:
        """Id of the voice used when a request names none."""
        ...

    def max_segment_chars(self, language: str) -> int:
        """Longest text segment `synthesize` accepts for `language`."""
        ...

    def fingerprint(self) -> str:
        """Identifies the loaded model, so caches can tell when it changed."""
        ...

    def synthesize(
        self, text: str, language: str, voice: Voice, params: GenerationParams
    ) -> Iterator[np.ndarray]:
        """Yield float32 mono PCM chunks in [-1, 1] at `sample_rate` for one text segment."""
        ...

    def warmup(self) -> None:
        """Run a short synthesis so the first request does not pay for lazy initialisation."""
        ...


@runtime_checkable
class CloningEngine(Engine, Protocol):
    """An engine that can speak in a voice learnt from reference clips (zero-shot cloning)."""

    def clone_conditioning(self, clips: Sequence[np.ndarray], sample_rate: int) -> object:
        """Speaker conditioning from mono float32 reference clips (already trimmed, same rate)."""
        ...

    def conditioning_tag(self) -> str:
        """Identifies the conditioning settings, so cached conditioning is reused only when valid."""
        ...

    def dump_conditioning(self, conditioning: object) -> bytes:
        """Serialise conditioning for the on-disk cache."""
        ...

    def load_conditioning(self, data: bytes) -> object:
        """Inverse of dump_conditioning."""
        ...
