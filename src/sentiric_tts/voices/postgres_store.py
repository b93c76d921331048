"""The voice library in PostgreSQL: voices, their clips and their latents (bytea) in one database
that every replica of a cluster shares (TTS_LIBRARY_URL).

A voice cloned through any replica speaks through every other. The rules are library_rules.py's,
as in the SQLite store; what keeps them across processes is the database:
- a unique index per owner and name key: of two creates of one name, wherever they run, one
  commits and the other is answered 409;
- every change of voices or samples first bumps the one row of `tts_library_state`: its row lock
  serialises writers (the voice count limit holds across replicas), and its generation tells a
  replica when the listing it keeps in memory is stale;
- a change is one transaction: a voice is created, edited or removed whole or not at all.

Listing is asked for on every synthesis request: it costs one small query (the generation) while
nothing changed. While the database cannot be reached, listings answer from the last one read
(built-in voices keep speaking), and whatever needs the database answers 503.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg

from sentiric_tts.voices.library_records import Latents, LibrarySample, LibraryVoice, NewSample
from sentiric_tts.voices.library_rules import (
    VOICE_COLUMNS,
    LibraryUnavailable,
    MetadataEdit,
    first_or_named,
    has_name,
    id_taken,
    imported_voice,
    library_full,
    name_key,
    name_taken,
    new_voice,
    sample_not_found,
    voice_from_row,
    voice_not_found,
    voice_row,
    with_samples,
    without_sample,
)
from sentiric_tts.voices.postgres_db import Database

log = logging.getLogger(__name__)

_UNIQUE_NAME = "tts_voices_owner_name"
_RETRY_AFTER_FAILURE_S = 2.0
"""After the database failed a listing, how long listings answer from memory without asking."""

_VOICE_COLUMNS = f"{VOICE_COLUMNS}, owner"


def _voices(db: psycopg.Connection, only: str | None = None) -> list[LibraryVoice]:
    """Every voice (or only the one of id `only`) with its samples, clips left out."""
    voice_filter, sample_filter = ("", "") if only is None else ("WHERE id = %s", "WHERE voice_id = %s")
    params = () if only is None else (only,)
    samples: dict[str, list[LibrarySample]] = {}
    for voice_id, sample_id, filename, seconds in db.execute(
        f"SELECT voice_id, id, filename, seconds FROM tts_voice_samples {sample_filter} "
        "ORDER BY voice_id, position",
        params,
    ):
        samples.setdefault(voice_id, []).append(LibrarySample(sample_id, filename, seconds))
    return [
        voice_from_row(row[:7], row[7], samples)
        for row in db.execute(
            f"SELECT {_VOICE_COLUMNS} FROM tts_voices {voice_filter} ORDER BY created_at, id", params
        )
    ]


def _bump(db: psycopg.Connection) -> None:
    """Take the library's write lock (until commit) and mark the listing changed."""
    db.execute("UPDATE tts_library_state SET generation = generation + 1")


def _current_voice(db: psycopg.Connection, voice_id: str) -> LibraryVoice:
    """The voice as a change finds it (writers are serialised by `_bump`)."""
    found = _voices(db, voice_id)
    if not found:
        raise voice_not_found(voice_id)
    return found[0]


def _insert_samples(
    db: psycopg.Connection, voice_id: str, first_position: int, rows: Sequence[tuple]
) -> None:  # type: ignore[type-arg]
    with db.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO tts_voice_samples (id, voice_id, position, filename, seconds, clip) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (sample.id, voice_id, first_position + offset, sample.filename, sample.seconds, new.data)
                for offset, (sample, new) in enumerate(rows)
            ],
        )


def _replace_latents(db: psycopg.Connection, voice_id: str, latents: Latents) -> None:
    """The voice's conditioning after its clips changed: every model's older rows are stale."""
    db.execute("DELETE FROM tts_voice_latents WHERE voice_id = %s", (voice_id,))
    db.execute(
        "INSERT INTO tts_voice_latents (voice_id, model, reference_digest, data) VALUES (%s, %s, %s, %s)",
        (voice_id, latents.model, latents.reference_digest, latents.data),
    )


def _touch(db: psycopg.Connection, voice: LibraryVoice) -> None:
    db.execute(
        "UPDATE tts_voices SET reference_digest = %s, updated_at = %s WHERE id = %s",
        (voice.reference_digest, voice.updated_at, voice.id),
    )


class PostgresLibraryStore:
    """A VoiceStore (voice_store.py) in a PostgreSQL database. Thread-safe; opened by `Database.open`."""

    def __init__(self, db: Database, max_voices: int) -> None:
        self._db = db
        self.max_voices = max_voices
        self._lock = threading.Lock()
        self._snapshot: tuple[LibraryVoice, ...] | None = None
        self._generation: int | None = None
        self._quiet_until = 0.0
        self.list()  # a store that cannot list does not start

    def close(self) -> None:
        self._db.close()

    # --- reading ---

    def _load(self) -> tuple[LibraryVoice, ...]:
        with self._db.connection() as db:
            (generation,) = db.execute("SELECT generation FROM tts_library_state").fetchone() or (None,)
            with self._lock:
                if generation == self._generation and self._snapshot is not None:
                    return self._snapshot
            # The rows and their generation read in one snapshot of the database.
            with db.transaction():
                db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                (generation,) = db.execute("SELECT generation FROM tts_library_state").fetchone() or (None,)
                voices = tuple(_voices(db))
        with self._lock:
            self._snapshot, self._generation = voices, generation
        return voices

    def list(self) -> tuple[LibraryVoice, ...]:
        """Every voice, whoever owns it, in creation order; the last listing read while the
        database cannot be reached."""
        with self._lock:
            remembered = self._snapshot
            if remembered is not None and time.monotonic() < self._quiet_until:
                return remembered
        try:
            return self._load()
        except LibraryUnavailable:
            if remembered is None:
                raise
            with self._lock:
                self._quiet_until = time.monotonic() + _RETRY_AFTER_FAILURE_S
            return remembered

    def get(self, voice_id: str) -> LibraryVoice:
        for voice in self.list():
            if voice.id == voice_id:
                return voice
        raise voice_not_found(voice_id)

    def has_name(self, name: str, owner: str | None) -> bool:
        return has_name(self.list(), name, owner)

    def sample_files(self, voice_id: str, leave_out: str | None = None) -> list[tuple[str, bytes]]:
        self.get(voice_id)
        with self._db.connection() as db:
            rows = db.execute(
                "SELECT id, filename, clip FROM tts_voice_samples WHERE voice_id = %s ORDER BY position",
                (voice_id,),
            ).fetchall()
        if not rows:  # removed since the listing was read
            raise voice_not_found(voice_id)
        return [(filename, bytes(clip)) for sample_id, filename, clip in rows if sample_id != leave_out]

    def sample_file(self, voice_id: str, sample_id: str | None) -> tuple[str, bytes]:
        sample = first_or_named(self.get(voice_id), sample_id)
        with self._db.connection() as db:
            row = db.execute(
                "SELECT filename, clip FROM tts_voice_samples WHERE voice_id = %s AND id = %s",
                (voice_id, sample.id),
            ).fetchone()
        if row is None:
            raise sample_not_found(voice_id, sample.id)
        return row[0], bytes(row[1])

    def latents(self, voice_id: str, model: str) -> bytes | None:
        self.get(voice_id)
        with self._db.connection() as db:
            row = db.execute(
                "SELECT l.data FROM tts_voice_latents l JOIN tts_voices v ON v.id = l.voice_id "
                "WHERE l.voice_id = %s AND l.model = %s AND l.reference_digest = v.reference_digest",
                (voice_id, model),
            ).fetchone()
        return None if row is None else bytes(row[0])

    # --- writing ---

    @contextmanager
    def _change(self) -> Iterator[psycopg.Connection]:
        """One change in one transaction, holding the library's write lock; then the listing is
        read again, so this replica lists what it wrote even should the database go away next."""
        try:
            with self._db.transaction() as db:
                _bump(db)
                yield db
        finally:
            with self._lock:
                self._generation = None
        with contextlib.suppress(LibraryUnavailable):
            self._load()

    def create(
        self,
        name: str,
        language: str | None,
        description: str,
        samples: Sequence[NewSample],
        latents: Latents,
        reserved_names: Sequence[str] = (),
        owner: str | None = None,
    ) -> LibraryVoice:
        voice = new_voice(name, language, description, samples, latents, reserved_names, owner)
        with self._change() as db:
            self._insert(db, voice, samples, latents)
        return voice

    def import_voice(
        self,
        voice: LibraryVoice,
        clips: Sequence[bytes],
        latents: Latents | None,
        replacing: str | None = None,
    ) -> LibraryVoice:
        """Keep a voice made elsewhere as it is (ids, owner, times, reference digest), with its
        clips and, when made from them, its latents; `replacing`: a voice removed in the same
        transaction (voice_store.py)."""
        latents = imported_voice(voice, clips, latents)
        samples = [
            NewSample(s.filename, data, s.seconds) for s, data in zip(voice.samples, clips, strict=True)
        ]
        with self._change() as db:
            removal = "DELETE FROM tts_voices WHERE id = %s"
            if replacing is not None and db.execute(removal, (replacing,)).rowcount == 0:
                raise voice_not_found(replacing)
            self._insert(db, voice, samples, latents)
        return voice

    def _insert(
        self,
        db: psycopg.Connection,
        voice: LibraryVoice,
        samples: Sequence[NewSample],
        latents: Latents | None,
    ) -> None:
        """A new voice's rows, within a change (which holds the write lock: the count is exact)."""
        (count,) = db.execute("SELECT COUNT(*) FROM tts_voices").fetchone() or (0,)
        if count >= self.max_voices:
            raise library_full(self.max_voices)
        try:
            db.execute(
                "INSERT INTO tts_voices (id, name, name_key, owner, language, description, "
                "created_at, updated_at, reference_digest) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                voice_row(voice),
            )
            _insert_samples(db, voice.id, 0, list(zip(voice.samples, samples, strict=True)))
        except psycopg.errors.UniqueViolation as exc:
            raise self._conflict(exc, voice) from exc
        if latents is not None:
            _replace_latents(db, voice.id, latents)

    @staticmethod
    def _conflict(exc: psycopg.errors.UniqueViolation, voice: LibraryVoice) -> Exception:
        if exc.diag.constraint_name == _UNIQUE_NAME:
            return name_taken(voice.name)
        # A primary key: the voice's id or one of its samples' ids is another voice's (only an
        # imported voice brings its own ids; new ones are random).
        return id_taken(voice.id)

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
        edit = MetadataEdit.checked(
            name=name,
            description=description,
            language=language,
            clear_language=clear_language,
            reserved_names=reserved_names,
        )
        with self._change() as db:
            changed = edit.applied(_current_voice(db, voice_id))
            try:
                db.execute(
                    "UPDATE tts_voices SET name = %s, name_key = %s, description = %s, language = %s, "
                    "updated_at = %s WHERE id = %s",
                    (
                        changed.name,
                        name_key(changed.name),
                        changed.description,
                        changed.language,
                        changed.updated_at,
                        voice_id,
                    ),
                )
            except psycopg.errors.UniqueViolation as exc:
                raise self._conflict(exc, changed) from exc
        return changed

    def delete(self, voice_id: str) -> None:
        with self._change() as db:
            if db.execute("DELETE FROM tts_voices WHERE id = %s", (voice_id,)).rowcount == 0:
                raise voice_not_found(voice_id)

    def add_samples(self, voice_id: str, samples: Sequence[NewSample], latents: Latents) -> LibraryVoice:
        with self._change() as db:
            current = _current_voice(db, voice_id)
            changed = with_samples(current, samples, latents)
            added = changed.samples[len(current.samples) :]
            # Positions only order the clips: the next after the highest, gaps and all.
            (top,) = db.execute(
                "SELECT COALESCE(MAX(position), -1) FROM tts_voice_samples WHERE voice_id = %s",
                (voice_id,),
            ).fetchone() or (-1,)
            _insert_samples(db, voice_id, top + 1, list(zip(added, samples, strict=True)))
            _touch(db, changed)
            _replace_latents(db, voice_id, latents)
        return changed

    def remove_sample(self, voice_id: str, sample_id: str, latents: Latents) -> LibraryVoice:
        with self._change() as db:
            changed = without_sample(_current_voice(db, voice_id), sample_id, latents)
            db.execute("DELETE FROM tts_voice_samples WHERE id = %s AND voice_id = %s", (sample_id, voice_id))
            _touch(db, changed)
            _replace_latents(db, voice_id, latents)
        return changed

    def store_latents(self, voice_id: str, latents: Latents) -> bool:
        # One statement: kept only while the voice still has the clips they were computed from
        # (a concurrent edit replaces every latents row of the voice in its own transaction).
        with self._db.connection() as db:
            kept = db.execute(
                "INSERT INTO tts_voice_latents (voice_id, model, reference_digest, data) "
                "SELECT id, %s, reference_digest, %s FROM tts_voices WHERE id = %s AND reference_digest = %s "
                "ON CONFLICT (voice_id, model) DO UPDATE "
                "SET reference_digest = EXCLUDED.reference_digest, data = EXCLUDED.data",
                (latents.model, latents.data, voice_id, latents.reference_digest),
            ).rowcount
        return kept > 0
