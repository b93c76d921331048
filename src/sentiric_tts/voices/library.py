"""The voice library's store: SQLite for what a voice is, files for its clips and latents.

Layout under the library folder:
    library.db                    voices and samples (metadata only)
    v_<12 hex>/s_<12 hex>.clip    a reference clip exactly as it was uploaded
    v_<12 hex>/latents.bin        the voice's conditioning, serialised by the engine

The store knows nothing about HTTP or engines: it keeps bytes and rows consistent. Every write
holds one lock and one SQLite transaction; files are put in place before the commit and removed
when the transaction fails, so a failed change leaves nothing behind. Folders that no row owns
(a crash between the two steps) are swept away when the store opens.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sentiric_tts.synthesis.errors import RequestError

log = logging.getLogger(__name__)

VOICE_ID = re.compile(r"v_[0-9a-f]{12}")
SAMPLE_ID = re.compile(r"s_[0-9a-f]{12}")
NAME_MAX_CHARS = 64
DESCRIPTION_MAX_CHARS = 500
_DB_NAME = "library.db"
_LATENTS_NAME = "latents.bin"
_TMP_PREFIX = ".tmp-"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS voices (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    language TEXT,
    description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    reference_digest TEXT NOT NULL,
    latents_model TEXT,
    latents_digest TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS voices_name_key ON voices (name_key);
CREATE TABLE IF NOT EXISTS samples (
    id TEXT PRIMARY KEY,
    voice_id TEXT NOT NULL REFERENCES voices (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    filename TEXT NOT NULL,
    seconds REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_voice ON samples (voice_id, position);
"""


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


def voice_not_found(voice_id: str) -> RequestError:
    return RequestError(
        f"No voice '{voice_id}'. GET /api/voices lists them all (library ids look like v_ and "
        "12 hex digits).",
        param="voice_id",
        code="voice_not_found",
        status=404,
    )


def _sample_not_found(voice_id: str, sample_id: str) -> RequestError:
    return RequestError(
        f"Voice '{voice_id}' has no sample '{sample_id}'. GET /api/voices/{voice_id} lists its samples.",
        param="sample_id",
        code="sample_not_found",
        status=404,
    )


def name_taken(name: str) -> RequestError:
    return RequestError(
        f"A voice named '{name}' already exists. Choose another name (names are compared "
        "without regard to case).",
        param="name",
        code="voice_name_taken",
        status=409,
    )


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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class VoiceLibrary:
    """Persistent library voices. Thread-safe; ids from outside are checked before any path use."""

    def __init__(self, directory: Path, max_voices: int) -> None:
        self.directory = directory
        self.max_voices = max_voices
        self._lock = threading.RLock()
        # Listing is asked for on every synthesis request (voice resolution): keep the rows in
        # memory and reload only after this store wrote.
        self._snapshot: tuple[LibraryVoice, ...] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)
        self._sweep_orphans()

    # --- plumbing ---

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One short-lived connection per operation: no connection is shared between threads.
        db = sqlite3.connect(self.directory / _DB_NAME, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA foreign_keys = ON")
            yield db
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            self._snapshot = None

    def _voice_dir(self, voice_id: str) -> Path:
        if not VOICE_ID.fullmatch(voice_id):  # never build a path from an unchecked id
            raise voice_not_found(voice_id)
        return self.directory / voice_id

    def _sample_path(self, voice_id: str, sample_id: str) -> Path:
        if not SAMPLE_ID.fullmatch(sample_id):
            raise _sample_not_found(voice_id, sample_id)
        return self._voice_dir(voice_id) / f"{sample_id}.clip"

    def _sweep_orphans(self) -> None:
        with self._lock, self._connect() as db:
            known = {row[0] for row in db.execute("SELECT id FROM voices")}
            for entry in self.directory.iterdir():
                voice_id = entry.name.removeprefix(_TMP_PREFIX)
                if not entry.is_dir() or not VOICE_ID.fullmatch(voice_id):
                    continue  # not ours (e.g. the Piper voices folder shares this directory)
                if entry.name.startswith(_TMP_PREFIX) or voice_id not in known:
                    log.warning("Removing unfinished voice folder %s", entry.name)
                    shutil.rmtree(entry, ignore_errors=True)

    @staticmethod
    def _write_file(path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def _new_id(prefix: str) -> str:
        return f"{prefix}_{secrets.token_hex(6)}"

    # --- reading ---

    def _load_all(self) -> tuple[LibraryVoice, ...]:
        with self._connect() as db:
            samples: dict[str, list[LibrarySample]] = {}
            for voice_id, sample_id, filename, seconds in db.execute(
                "SELECT voice_id, id, filename, seconds FROM samples ORDER BY voice_id, position"
            ):
                samples.setdefault(voice_id, []).append(LibrarySample(sample_id, filename, seconds))
            return tuple(
                LibraryVoice(
                    id=row[0],
                    name=row[1],
                    language=row[2],
                    description=row[3],
                    created_at=row[4],
                    updated_at=row[5],
                    reference_digest=row[6],
                    samples=tuple(samples.get(row[0], ())),
                )
                for row in db.execute(
                    "SELECT id, name, language, description, created_at, updated_at, reference_digest "
                    "FROM voices ORDER BY created_at, id"
                )
            )

    def list(self) -> tuple[LibraryVoice, ...]:
        with self._lock:
            if self._snapshot is None:
                self._snapshot = self._load_all()
            return self._snapshot

    def get(self, voice_id: str) -> LibraryVoice:
        """The voice with this id; RequestError 404 when there is none."""
        for voice in self.list():
            if voice.id == voice_id:
                return voice
        raise voice_not_found(voice_id)

    def find(self, wanted: str) -> LibraryVoice | None:
        """A voice by id, else by name (case-insensitive); None when neither matches."""
        voices = self.list()
        key = wanted.strip().casefold()
        return next((v for v in voices if v.id == wanted.strip()), None) or next(
            (v for v in voices if v.name.casefold() == key), None
        )

    def sample_files(self, voice_id: str) -> list[tuple[str, bytes]]:
        """Every stored clip of a voice as (file name, uploaded bytes), in order."""
        voice = self.get(voice_id)
        return [(s.filename, self._sample_path(voice_id, s.id).read_bytes()) for s in voice.samples]

    def sample_file(self, voice_id: str, sample_id: str | None) -> tuple[str, bytes]:
        """One stored clip (default: the first) as (file name, uploaded bytes)."""
        voice = self.get(voice_id)
        wanted = voice.samples[0].id if sample_id is None else sample_id
        sample = next((s for s in voice.samples if s.id == wanted), None)
        if sample is None:
            raise _sample_not_found(voice_id, wanted)
        return sample.filename, self._sample_path(voice_id, sample.id).read_bytes()

    def latents(self, voice_id: str, model: str) -> bytes | None:
        """Stored conditioning when it was made by `model` from the voice's current clips."""
        with self._lock, self._connect() as db:
            row = db.execute(
                "SELECT reference_digest, latents_model, latents_digest FROM voices WHERE id = ?", (voice_id,)
            ).fetchone()
            if row is None:
                raise voice_not_found(voice_id)
            digest, latents_model, latents_digest = row
            if latents_model != model or latents_digest != digest:
                return None
            path = self._voice_dir(voice_id) / _LATENTS_NAME
            return path.read_bytes() if path.is_file() else None

    # --- writing ---

    def create(
        self,
        name: str,
        language: str | None,
        description: str,
        samples: Sequence[NewSample],
        latents: Latents,
        reserved_names: Sequence[str] = (),
    ) -> LibraryVoice:
        """Store a new voice; RequestError 409 when its name is taken or the library is full."""
        name = clean_name(name)
        description = clean_description(description)
        if not samples:
            raise RequestError("A voice needs at least one sample.", param="files", code="missing_reference")
        if name.casefold() in {reserved.casefold() for reserved in reserved_names}:
            raise name_taken(name)
        voice_id = self._new_id("v")
        staging = self.directory / f"{_TMP_PREFIX}{voice_id}"
        final = self._voice_dir(voice_id)
        now = _now()
        staging.mkdir()
        try:
            sample_ids = [self._new_id("s") for _ in samples]
            for sample_id, sample in zip(sample_ids, samples, strict=True):
                (staging / f"{sample_id}.clip").write_bytes(sample.data)
            (staging / _LATENTS_NAME).write_bytes(latents.data)
            with self._transaction() as db:
                (count,) = db.execute("SELECT COUNT(*) FROM voices").fetchone()
                if count >= self.max_voices:
                    raise RequestError(
                        f"The voice library is full ({self.max_voices} voices). Delete a voice first.",
                        code="voice_library_full",
                        status=409,
                    )
                try:
                    db.execute(
                        "INSERT INTO voices (id, name, name_key, language, description, created_at, "
                        "updated_at, reference_digest, latents_model, latents_digest) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            voice_id,
                            name,
                            name.casefold(),
                            language,
                            description,
                            now,
                            now,
                            latents.reference_digest,
                            latents.model,
                            latents.reference_digest,
                        ),
                    )
                except sqlite3.IntegrityError as exc:  # the unique index settles concurrent creates
                    raise name_taken(name) from exc
                db.executemany(
                    "INSERT INTO samples (id, voice_id, position, filename, seconds) VALUES (?, ?, ?, ?, ?)",
                    [
                        (sample_id, voice_id, position, sample.filename, sample.seconds)
                        for position, (sample_id, sample) in enumerate(zip(sample_ids, samples, strict=True))
                    ],
                )
                os.replace(staging, final)  # inside the transaction: a failure rolls the rows back
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(final, ignore_errors=True)  # moved in, but the commit failed
            raise
        return self.get(voice_id)

    def update(
        self,
        voice_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        language: str | None = None,
        clear_language: bool = False,
        reserved_names: Sequence[str] = (),
    ) -> LibraryVoice:
        """Change a voice's metadata; fields left None stay as they are."""
        self._voice_dir(voice_id)
        if name is not None:
            name = clean_name(name)
            if name.casefold() in {reserved.casefold() for reserved in reserved_names}:
                raise name_taken(name)
        if description is not None:
            description = clean_description(description)
        with self._transaction() as db:
            current = db.execute("SELECT name, description, language FROM voices WHERE id = ?", (voice_id,))
            row = current.fetchone()
            if row is None:
                raise voice_not_found(voice_id)
            new_name = row[0] if name is None else name
            new_description = row[1] if description is None else description
            new_language = None if clear_language else (row[2] if language is None else language)
            try:
                db.execute(
                    "UPDATE voices SET name = ?, name_key = ?, description = ?, language = ?, "
                    "updated_at = ? WHERE id = ?",
                    (new_name, new_name.casefold(), new_description, new_language, _now(), voice_id),
                )
            except sqlite3.IntegrityError as exc:
                raise name_taken(new_name) from exc
        return self.get(voice_id)

    def delete(self, voice_id: str) -> None:
        folder = self._voice_dir(voice_id)
        with self._transaction() as db:
            if db.execute("DELETE FROM voices WHERE id = ?", (voice_id,)).rowcount == 0:
                raise voice_not_found(voice_id)
        # After the commit: a crash here leaves a folder no row owns, swept at the next start.
        shutil.rmtree(folder, ignore_errors=True)

    def add_samples(self, voice_id: str, samples: Sequence[NewSample], latents: Latents) -> LibraryVoice:
        """Append clips; `latents` are the conditioning of all clips, old and new."""
        folder = self._voice_dir(voice_id)
        written: list[Path] = []
        try:
            with self._transaction() as db:
                (position,) = db.execute(
                    "SELECT COALESCE(MAX(position) + 1, 0) FROM samples WHERE voice_id = ?", (voice_id,)
                ).fetchone()
                if not self._touch(db, voice_id, latents):
                    raise voice_not_found(voice_id)
                for offset, sample in enumerate(samples):
                    sample_id = self._new_id("s")
                    path = folder / f"{sample_id}.clip"
                    path.write_bytes(sample.data)
                    written.append(path)
                    db.execute(
                        "INSERT INTO samples (id, voice_id, position, filename, seconds) VALUES (?, ?, ?, ?, ?)",
                        (sample_id, voice_id, position + offset, sample.filename, sample.seconds),
                    )
                self._write_file(folder / _LATENTS_NAME, latents.data)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        return self.get(voice_id)

    def remove_sample(self, voice_id: str, sample_id: str, latents: Latents) -> LibraryVoice:
        """Drop one clip; `latents` are the conditioning of the clips that remain."""
        path = self._sample_path(voice_id, sample_id)
        with self._transaction() as db:
            removed = db.execute("DELETE FROM samples WHERE id = ? AND voice_id = ?", (sample_id, voice_id))
            if removed.rowcount == 0:
                self.get(voice_id)  # 404 for the voice first, when it is the voice that is missing
                raise _sample_not_found(voice_id, sample_id)
            (left,) = db.execute("SELECT COUNT(*) FROM samples WHERE voice_id = ?", (voice_id,)).fetchone()
            if left == 0:
                raise last_sample(voice_id)
            self._touch(db, voice_id, latents)
            self._write_file(self._voice_dir(voice_id) / _LATENTS_NAME, latents.data)
        path.unlink(missing_ok=True)
        return self.get(voice_id)

    def store_latents(self, voice_id: str, latents: Latents) -> bool:
        """Keep recomputed conditioning; False (nothing kept) when the voice's clips changed since."""
        with self._transaction() as db:
            row = db.execute("SELECT reference_digest FROM voices WHERE id = ?", (voice_id,)).fetchone()
            if row is None or row[0] != latents.reference_digest:
                return False
            self._write_file(self._voice_dir(voice_id) / _LATENTS_NAME, latents.data)
            db.execute(
                "UPDATE voices SET latents_model = ?, latents_digest = ? WHERE id = ?",
                (latents.model, latents.reference_digest, voice_id),
            )
            return True

    @staticmethod
    def _touch(db: sqlite3.Connection, voice_id: str, latents: Latents) -> bool:
        cursor = db.execute(
            "UPDATE voices SET reference_digest = ?, latents_model = ?, latents_digest = ?, updated_at = ? "
            "WHERE id = ?",
            (latents.reference_digest, latents.model, latents.reference_digest, _now(), voice_id),
        )
        return cursor.rowcount == 1


def last_sample(voice_id: str) -> RequestError:
    return RequestError(
        f"Voice '{voice_id}' has only this sample left; a voice needs at least one. Add another "
        "sample first, or delete the voice.",
        param="sample_id",
        code="last_sample",
        status=409,
    )
