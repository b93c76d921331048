"""What a library voice is, in memory and in its folder.

A voice folder holds `voice.json` (the voice: name, owner, samples in order ...), one
`<sample id>.clip` per sample, and `latents.bin`, the conditioning computed from the clips. The
latents file says what it was computed from (model and reference digest) and carries a checksum
of its payload, so stale or damaged conditioning is recognised, whatever state a crash left.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

VOICE_ID = re.compile(r"v_[0-9a-f]{12}")
SAMPLE_ID = re.compile(r"s_[0-9a-f]{12}")
NAME_MAX_CHARS = 64
DESCRIPTION_MAX_CHARS = 500
RECORD_NAME = "voice.json"
LATENTS_NAME = "latents.bin"
CLIP_SUFFIX = ".clip"
_LATENTS_MAGIC = b"sentiric-tts latents 1\n"


@dataclass(frozen=True)
class LibrarySample:
    id: str
    filename: str
    seconds: float


@dataclass(frozen=True)
class LibraryVoice:
    id: str
    name: str
    language: str | None
    description: str
    created_at: str
    updated_at: str
    samples: tuple[LibrarySample, ...]
    reference_digest: str
    """Digest of the voice's canonical reference audio (all samples, in order)."""
    owner: str | None = None
    """Owner hash of the API key that created it; None: made while the API was open."""


@dataclass(frozen=True)
class NewSample:
    """A clip to store: its uploaded bytes, with what validating it found."""

    filename: str
    data: bytes
    seconds: float


@dataclass(frozen=True)
class Latents:
    """Serialised conditioning, tagged with what it was computed from."""

    model: str
    """The model fingerprint and conditioning settings."""
    reference_digest: str
    data: bytes


def clip_name(sample_id: str) -> str:
    return f"{sample_id}{CLIP_SUFFIX}"


# --- voice.json ---


class _SampleFile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(pattern=SAMPLE_ID.pattern)
    filename: str = Field(max_length=255)
    seconds: float = Field(ge=0)


class _VoiceFile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: int = Field(1, ge=1, le=1)
    id: str = Field(pattern=VOICE_ID.pattern)
    name: str = Field(min_length=1, max_length=NAME_MAX_CHARS)
    owner: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    language: str | None = None
    description: str = Field("", max_length=DESCRIPTION_MAX_CHARS)
    created_at: str
    updated_at: str
    reference_digest: str
    samples: list[_SampleFile] = Field(min_length=1)


def encode_record(voice: LibraryVoice) -> bytes:
    document = _VoiceFile(
        id=voice.id,
        name=voice.name,
        owner=voice.owner,
        language=voice.language,
        description=voice.description,
        created_at=voice.created_at,
        updated_at=voice.updated_at,
        reference_digest=voice.reference_digest,
        samples=[_SampleFile(id=s.id, filename=s.filename, seconds=s.seconds) for s in voice.samples],
    )
    return document.model_dump_json(indent=1).encode() + b"\n"


def decode_record(data: bytes) -> LibraryVoice | None:
    """The voice a voice.json describes; None when it is damaged or not one we can read."""
    try:
        document = _VoiceFile.model_validate_json(data)
    except ValidationError:
        return None
    if len({s.id for s in document.samples}) != len(document.samples):
        return None
    return LibraryVoice(
        id=document.id,
        name=document.name,
        language=document.language,
        description=document.description,
        created_at=document.created_at,
        updated_at=document.updated_at,
        samples=tuple(LibrarySample(s.id, s.filename, s.seconds) for s in document.samples),
        reference_digest=document.reference_digest,
        owner=document.owner,
    )


# --- latents.bin ---


def encode_latents(latents: Latents) -> bytes:
    header = {
        "model": latents.model,
        "reference_digest": latents.reference_digest,
        "sha256": hashlib.sha256(latents.data).hexdigest(),
    }
    return _LATENTS_MAGIC + json.dumps(header).encode() + b"\n" + latents.data


def is_encoded_latents(data: bytes) -> bool:
    return data.startswith(_LATENTS_MAGIC)


def decode_latents(data: bytes) -> Latents | None:
    """The conditioning a latents.bin holds; None when it is damaged, truncated or unknown."""
    if not is_encoded_latents(data):
        return None
    line, newline, payload = data[len(_LATENTS_MAGIC) :].partition(b"\n")
    try:
        header = json.loads(line) if newline else None
    except ValueError:
        return None
    if not isinstance(header, dict):
        return None
    model, digest, checksum = header.get("model"), header.get("reference_digest"), header.get("sha256")
    if not (isinstance(model, str) and isinstance(digest, str) and isinstance(checksum, str)):
        return None
    if hashlib.sha256(payload).hexdigest() != checksum:
        return None
    return Latents(model=model, reference_digest=digest, data=payload)
