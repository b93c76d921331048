"""The protocol every synthesis engine implements, and what each kind of engine promises.

Engines know nothing about HTTP, SSML, formats or resampling: they take one text segment, a
language, a voice and generation parameters, and yield float32 mono PCM at their native rate.
Everything else (splitting, scheduling, resampling, encoding) is the pipeline's job.

Two kinds, which the scheduler (synthesis/scheduler.py) drives differently:

- thread (Piper): a call renders on the thread that advances its iterator, on CPU cores. Calls
  may run on several threads at once; the scheduler gives each instance a stream thread per core
  and as many first-audio threads, the stream threads at a lower OS priority, and the engine
  picks its sessions (how many cores) from the calling thread's priority and its rivals.
- batched (XTTS): the engine owns one stepping loop per model that advances every open sentence
  in one forward pass per step. A call opens a sentence on that loop and returns at once; its
  iterator blocks until the loop has the sentence's next chunk. Many threads may read their
  sentences at once: the scheduler gives every admitted job a thread, applies backpressure by
  reading no further (the engine pauses a sentence whose chunks are unread), and cancels by
  closing the iterator (the engine drops the sentence before its next step). `close()` stops the
  loop. Nothing above the scheduler knows which kind it talks to.

Every call says whether someone waits for its first audio (`awaited`): a thread engine spends a
little more work to be heard sooner (Piper decodes the sentence in pieces), a batched engine puts
the sentence's prefill and first chunk before the later chunks of sentences already playing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

EngineKind = Literal["thread", "batched"]
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


class EngineLost(EngineError):
    """The engine doing the work went away mid-call (a cluster's engine replica died, its node
    left): nothing is wrong with the request, and sending it again will reach a live engine."""


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

    kind: EngineKind
    """How the scheduler drives it (see the module doc)."""

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
        self, text: str, language: str, voice: Voice, params: GenerationParams, awaited: bool = False
    ) -> Iterator[np.ndarray]:
        """Yield float32 mono PCM chunks in [-1, 1] at `sample_rate` for one text segment.
        `awaited`: someone is waiting for this segment's first audio (nothing of the request has
        been heard yet), so its first chunk should come as soon as it can."""
        ...

    def warmup(self) -> None:
        """Run a short synthesis so the first request does not pay for lazy initialisation."""
        ...


@runtime_checkable
class BatchedEngine(Engine, Protocol):
    """An engine of the batched kind (see the module doc)."""

    max_batch: int
    """Sentences its loop advances together."""

    def graph_batch_sizes(self) -> list[int]:
        """Batch sizes whose step replays a captured CUDA graph (empty: eager steps)."""
        ...

    def close(self) -> None:
        """Stop the loop; sentences still open end with an EngineError."""
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


@runtime_checkable
class LatentEngine(CloningEngine, Protocol):
    """A cloning engine whose conditioning is plain vectors a client may hold and send back
    (XTTS: a speaker embedding and GPT conditioning latents, as coqui's xtts-streaming-server
    hands them out and takes them in). Vectors are nested lists of floats, never tensors, so the
    doors stay free of the engine's libraries."""

    def speaker_conditioning(self, voice_id: str) -> object:
        """The conditioning of one of the engine's own voices (KeyError if it has none)."""
        ...

    def conditioning_vectors(self, conditioning: object) -> tuple[list[float], list[list[float]]]:
        """(speaker embedding, GPT conditioning latents: rows of the model's width) of conditioning."""
        ...

    def conditioning_from_vectors(
        self, speaker_embedding: Sequence[float], gpt_cond_latent: Sequence[float] | Sequence[Sequence[float]]
    ) -> object:
        """Conditioning from vectors as `conditioning_vectors` gives them (the latents may come
        flat); ValueError, saying why, when their sizes do not fit this model."""
        ...
