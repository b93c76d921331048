"""What an engine replica tells the ingress about its engine at start: the Engine protocol's
attributes and listings, as plain data that crosses a Serve handle."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sentiric_tts.engines.base import (
    BatchedEngine,
    CloningEngine,
    Engine,
    EngineKind,
    LatentEngine,
    VoiceInfo,
)


class EngineMismatch(RuntimeError):
    """A synthesis call from an ingress that was built for another engine than the replica runs
    (EngineDescription.contract): refused before any audio."""


@dataclass(frozen=True)
class EngineDescription:
    name: str
    sample_rate: int
    device: str
    kind: EngineKind
    """The replica's own kind (the ingress drives every remote engine as batched: remote_engine.py)."""
    streams_within_segment: bool
    supports_cloning: bool
    languages: tuple[str, ...]
    voices: tuple[VoiceInfo, ...]
    default_voice: str
    max_segment_chars: dict[str, int]
    fingerprint: str
    cloning: bool
    """The engine implements CloningEngine (conditioning crosses the handle as its dump)."""
    latents: bool
    """The engine implements LatentEngine (conditioning as vectors a client holds)."""
    conditioning_tag: str
    max_batch: int | None
    graph_batch_sizes: tuple[int, ...]

    def contract(self) -> str:
        """A digest of what the ingress builds its pipeline on (the engine, its rate, voices,
        languages, segment limits, conditioning format), leaving out what may differ between
        replicas of one engine (device, batch sizes). An ingress only sends work to replicas
        with its own: audio from another engine would be played at the wrong rate, in the
        wrong voice, or with conditioning it cannot read."""
        fields = (
            self.name,
            self.sample_rate,
            self.streams_within_segment,
            self.supports_cloning,
            self.languages,
            self.voices,
            self.default_voice,
            sorted(self.max_segment_chars.items()),
            self.fingerprint,
            self.cloning,
            self.latents,
            self.conditioning_tag,
        )
        return hashlib.sha256(repr(fields).encode()).hexdigest()[:16]


def describe(engine: Engine) -> EngineDescription:
    languages = tuple(engine.languages())
    cloning = isinstance(engine, CloningEngine)
    batched = isinstance(engine, BatchedEngine)
    return EngineDescription(
        name=engine.name,
        sample_rate=engine.sample_rate,
        device=engine.device,
        kind=engine.kind,
        streams_within_segment=engine.streams_within_segment,
        supports_cloning=engine.supports_cloning,
        languages=languages,
        voices=tuple(engine.voices()),
        default_voice=engine.default_voice(),
        max_segment_chars={language: engine.max_segment_chars(language) for language in languages},
        fingerprint=engine.fingerprint(),
        cloning=cloning,
        latents=isinstance(engine, LatentEngine),
        conditioning_tag=engine.conditioning_tag() if cloning else "",
        max_batch=engine.max_batch if batched else None,
        graph_batch_sizes=tuple(engine.graph_batch_sizes()) if batched else (),
    )
