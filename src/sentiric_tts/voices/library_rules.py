"""What every voice library store enforces, whatever keeps its bytes: clean names and
descriptions, new ids, the edits a voice may undergo, and the errors a client reads.

Stores (library_store.py: SQLite and folders; postgres_store.py: PostgreSQL) build each change
with these helpers and keep only the persistence to themselves, so both answer a request alike.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sentiric_tts.failures import Failure, RequestError, ServiceBusy
from sentiric_tts.voices.library_records import (
    DESCRIPTION_MAX_CHARS,
    NAME_MAX_CHARS,
    SAMPLE_ID,
    VOICE_ID,
    Latents,
    LibrarySample,
    LibraryVoice,
    NewSample,
)

UNAVAILABLE_RETRY_S = 5
"""What a client is told to wait when the library's database cannot be reached."""


# --- what a client reads ---


def voice_not_found(voice_id: str) -> RequestError:
    return RequestError(
        f"No voice '{voice_id}'. GET /api/voices lists them all (library ids look like v_ and "
        "12 hex digits).",
        param="voice_id",
        code="voice_not_found",
        kind=Failure.NOT_FOUND,
    )


def sample_not_found(voice_id: str, sample_id: str) -> RequestError:
    return RequestError(
        f"Voice '{voice_id}' has no sample '{sample_id}'. GET /api/voices/{voice_id} lists its samples.",
        param="sample_id",
        code="sample_not_found",
        kind=Failure.NOT_FOUND,
    )


def sample_missing(voice_id: str, sample_id: str) -> RequestError:
    return RequestError(
        f"The clip of sample '{sample_id}' of voice '{voice_id}' is missing from the library's "
        f"folder. Remove the sample (DELETE /api/voices/{voice_id}/samples/{sample_id}) or ask the "
        "operator to restore the file.",
        param="sample_id",
        code="sample_missing",
        kind=Failure.CONFLICT,
    )


def name_taken(name: str) -> RequestError:
    return RequestError(
        f"A voice named '{name}' already exists. Choose another name (names are compared "
        "without regard to case).",
        param="name",
        code="voice_name_taken",
        kind=Failure.CONFLICT,
    )


def id_taken(voice_id: str) -> RequestError:
    return RequestError(
        f"The library already has a voice or sample with an id of voice '{voice_id}'.",
        param="voice_id",
        code="voice_id_taken",
        kind=Failure.CONFLICT,
    )


def last_sample(voice_id: str) -> RequestError:
    return RequestError(
        f"Voice '{voice_id}' has only this sample left; a voice needs at least one. Add another "
        "sample first, or delete the voice.",
        param="sample_id",
        code="last_sample",
        kind=Failure.CONFLICT,
    )


def library_full(max_voices: int) -> RequestError:
    return RequestError(
        f"The voice library is full ({max_voices} voices). Delete a voice first.",
        code="voice_library_full",
        kind=Failure.CONFLICT,
    )


def storage_full() -> RequestError:
    return RequestError(
        "The voice library's disk is full: nothing was changed. The operator needs to free space "
        "in the data folder (TTS_DATA_DIR / TTS_VOICE_LIBRARY_DIR, or the database's disk with "
        "TTS_LIBRARY_URL); then try again.",
        code="insufficient_storage",
        kind=Failure.STORAGE_FULL,
    )


class LibraryUnavailable(ServiceBusy):
    """The voice library's database cannot be reached (down, restarting, out of connections):
    a 503 with a pause to retry after, never the driver's text (that is logged)."""

    code = "voice_library_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "The voice library's database cannot be reached right now; nothing was changed. Retry shortly.",
            retry_after_s=UNAVAILABLE_RETRY_S,
        )


# --- what may be stored ---


def clean_name(name: str) -> str:
    """A voice name as stored: trimmed, 1-64 printable characters, not shaped like an id."""
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > NAME_MAX_CHARS:
        raise RequestError(
            f"The name must be 1-{NAME_MAX_CHARS} characters (got {len(cleaned)}).",
            param="name",
            code="invalid_name",
        )
    if not cleaned.isprintable():
        raise RequestError("The name holds control characters.", param="name", code="invalid_name")
    if VOICE_ID.fullmatch(cleaned.casefold()):
        raise RequestError(
            f"'{cleaned}' looks like a voice id; choose a name that does not.",
            param="name",
            code="invalid_name",
        )
    return cleaned


def clean_description(description: str) -> str:
    cleaned = description.strip()
    if len(cleaned) > DESCRIPTION_MAX_CHARS:
        raise RequestError(
            f"The description is {len(cleaned)} characters; the limit is {DESCRIPTION_MAX_CHARS}.",
            param="description",
            code="invalid_description",
        )
    return cleaned


def name_key(name: str) -> str:
    """What makes two names the same name (for the unique index per owner)."""
    return name.casefold()


VOICE_COLUMNS = "id, name, language, description, created_at, updated_at, reference_digest"
"""The columns of a voice's row that every store and schema version has, in `voice_from_row`'s
order (the owner column came later to SQLite, so it is read apart)."""


def voice_from_row(
    columns: Sequence[Any], owner: str | None, samples: dict[str, list[LibrarySample]]
) -> LibraryVoice:
    """A voice from its VOICE_COLUMNS, its owner and the samples of every voice read with it."""
    voice_id, name, language, description, created_at, updated_at, reference_digest = columns
    return LibraryVoice(
        id=voice_id,
        name=name,
        language=language,
        description=description,
        created_at=created_at,
        updated_at=updated_at,
        reference_digest=reference_digest,
        owner=owner,
        samples=tuple(samples.get(voice_id, ())),
    )


def voice_row(voice: LibraryVoice) -> tuple[object, ...]:
    """A voice's row in either store's `voices` table, in the columns' order: id, name, name_key,
    owner, language, description, created_at, updated_at, reference_digest."""
    return (
        voice.id,
        voice.name,
        name_key(voice.name),
        voice.owner,
        voice.language,
        voice.description,
        voice.created_at,
        voice.updated_at,
        voice.reference_digest,
    )


def _refuse_reserved(name: str, reserved_names: Sequence[str]) -> None:
    if name_key(name) in {name_key(reserved) for reserved in reserved_names}:
        raise name_taken(name)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


# --- the changes a voice undergoes, before any store keeps them ---


def new_voice(
    name: str,
    language: str | None,
    description: str,
    samples: Sequence[NewSample],
    latents: Latents,
    reserved_names: Sequence[str] = (),
    owner: str | None = None,
) -> LibraryVoice:
    """The record of a voice to create, checked (400 on a bad name, 409 on a reserved one)."""
    name = clean_name(name)
    description = clean_description(description)
    if not samples:
        raise RequestError("A voice needs at least one sample.", param="files", code="missing_reference")
    _refuse_reserved(name, reserved_names)
    stamp = now()
    return LibraryVoice(
        id=new_id("v"),
        name=name,
        language=language,
        description=description,
        created_at=stamp,
        updated_at=stamp,
        samples=tuple(LibrarySample(new_id("s"), s.filename, s.seconds) for s in samples),
        reference_digest=latents.reference_digest,
        owner=owner,
    )


def imported_voice(voice: LibraryVoice, clips: Sequence[bytes], latents: Latents | None) -> Latents | None:
    """Check a voice made elsewhere before a store keeps it as it is (ids, owner, times): the same
    rules as a new voice's, since it comes from outside this library. Returns the latents worth
    keeping: None when they were computed from other clips than the voice's."""
    if clean_name(voice.name) != voice.name:
        raise RequestError(f"The name '{voice.name}' is not stored clean.", param="name", code="invalid_name")
    if clean_description(voice.description) != voice.description:
        raise RequestError(
            "The description is not stored clean.", param="description", code="invalid_description"
        )
    ids_ok = VOICE_ID.fullmatch(voice.id) and all(SAMPLE_ID.fullmatch(s.id) for s in voice.samples)
    if not ids_ok or len({s.id for s in voice.samples}) != len(voice.samples):
        raise RequestError(
            f"Voice '{voice.id}' has ids this library cannot use.", param="voice_id", code="invalid_id"
        )
    if not voice.samples or len(clips) != len(voice.samples):
        raise RequestError(
            f"Voice '{voice.id}' needs one clip per sample ({len(voice.samples)}, got {len(clips)}).",
            param="files",
            code="missing_reference",
        )
    if latents is None or latents.reference_digest != voice.reference_digest:
        return None
    return latents


@dataclasses.dataclass(frozen=True)
class MetadataEdit:
    """A checked change of a voice's name, description or language; None fields stay."""

    name: str | None = None
    description: str | None = None
    language: str | None = None
    clear_language: bool = False

    @classmethod
    def checked(
        cls,
        *,
        name: str | None,
        description: str | None,
        language: str | None,
        clear_language: bool,
        reserved_names: Sequence[str],
    ) -> MetadataEdit:
        if name is not None:
            name = clean_name(name)
            _refuse_reserved(name, reserved_names)
        if description is not None:
            description = clean_description(description)
        return cls(name, description, language, clear_language)

    def applied(self, current: LibraryVoice) -> LibraryVoice:
        return dataclasses.replace(
            current,
            name=current.name if self.name is None else self.name,
            description=current.description if self.description is None else self.description,
            language=None
            if self.clear_language
            else (current.language if self.language is None else self.language),
            updated_at=now(),
        )


def with_samples(current: LibraryVoice, samples: Sequence[NewSample], latents: Latents) -> LibraryVoice:
    """The voice with `samples` appended; `latents` are the conditioning of all its clips."""
    added = tuple(LibrarySample(new_id("s"), s.filename, s.seconds) for s in samples)
    return dataclasses.replace(
        current,
        samples=current.samples + added,
        reference_digest=latents.reference_digest,
        updated_at=now(),
    )


def without_sample(current: LibraryVoice, sample_id: str, latents: Latents) -> LibraryVoice:
    """The voice less one sample; 404 when it has no such sample, 409 when it is the last."""
    kept = tuple(s for s in current.samples if s.id != sample_id)
    if len(kept) == len(current.samples):
        raise sample_not_found(current.id, sample_id)
    if not kept:
        raise last_sample(current.id)
    return dataclasses.replace(
        current, samples=kept, reference_digest=latents.reference_digest, updated_at=now()
    )


def first_or_named(voice: LibraryVoice, sample_id: str | None) -> LibrarySample:
    """The sample asked for (default: the first); 404 when the voice has none of that id."""
    wanted = voice.samples[0].id if sample_id is None else sample_id
    sample = next((s for s in voice.samples if s.id == wanted), None)
    if sample is None:
        raise sample_not_found(voice.id, wanted)
    return sample


def has_name(voices: Sequence[LibraryVoice], name: str, owner: str | None) -> bool:
    key = name_key(name.strip())
    return any(v.owner == owner and name_key(v.name) == key for v in voices)
