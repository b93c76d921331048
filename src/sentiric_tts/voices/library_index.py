"""The voice library's index: one SQLite row per voice and per sample.

The rows answer listings, keep names unique per owner, count voices against the size limit, and
one transaction settles concurrent changes. They index the voice folders, whose voice.json files
say what each voice is (library_records.py), so the index can always be rebuilt from the folders,
which is what happens when the database is damaged, missing or empty. The database runs in WAL
mode and is checked (PRAGMA quick_check) every time the library opens; a damaged one is moved
aside, kept for the operator, and replaced by a new one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sentiric_tts.voices.library_records import LibrarySample, LibraryVoice
from sentiric_tts.voices.library_rules import VOICE_COLUMNS, voice_from_row, voice_row

log = logging.getLogger(__name__)

DB_NAME = "library.db"
SCHEMA_VERSION = 1
_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)

_SCHEMA = f"""
BEGIN IMMEDIATE;
DROP TABLE IF EXISTS samples;
DROP TABLE IF EXISTS voices;
CREATE TABLE voices (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    owner TEXT,
    language TEXT,
    description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    reference_digest TEXT NOT NULL
);
CREATE UNIQUE INDEX voices_owner_name ON voices (COALESCE(owner, ''), name_key);
CREATE TABLE samples (
    id TEXT PRIMARY KEY,
    voice_id TEXT NOT NULL REFERENCES voices (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    filename TEXT NOT NULL,
    seconds REAL NOT NULL
);
CREATE INDEX samples_voice ON samples (voice_id, position);
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""


@dataclass(frozen=True)
class LegacyVoice:
    """A voice of a database from before voice folders carried their own voice.json."""

    voice: LibraryVoice
    latents_model: str | None
    latents_digest: str | None


class _Damaged(sqlite3.DatabaseError):
    pass


class Transaction:
    """One change of the index, with what to do to the files when it commits or fails."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self._undo: list[Callable[[], None]] = []
        self._after: list[Callable[[], None]] = []

    def on_failure(self, action: Callable[[], None]) -> None:
        """Run `action` if the transaction does not commit (last registered, first run)."""
        self._undo.append(action)

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run `action` once the transaction committed: tidying that the change no longer needs."""
        self._after.append(action)

    def _run(self, actions: list[Callable[[], None]], when: str) -> None:
        for action in actions:
            try:
                action()
            except Exception as exc:  # the change itself is settled; a leftover is swept at start
                log.warning("Voice library: tidying %s failed (%s); the next start sweeps it", when, exc)


class LibraryIndex:
    def __init__(self, directory: Path) -> None:
        self.path = directory / DB_NAME
        self._keeper: sqlite3.Connection | None = None

    # --- connections ---

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        # One short-lived connection per operation: no connection is shared between threads.
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA foreign_keys = ON")
            yield db
        finally:
            db.close()

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            change = Transaction(db)
            try:
                yield change
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                change._run(change._undo[::-1], "after a failed change")
                raise
            change._run(change._after, "after a change")

    # --- opening ---

    def open(self) -> Path | None:
        """Make the database usable: WAL mode, checked. A damaged database is moved aside and a
        new one created; returns where it went (None when it was sound)."""
        moved = None
        try:
            self._check()
        except sqlite3.DatabaseError as exc:
            if not isinstance(exc, _Damaged) and getattr(exc, "sqlite_errorcode", None) not in _DAMAGED:
                raise  # locked, unreadable, disk full: not damage, and nothing to move aside
            moved = self._move_aside()
            log.warning(
                "The voice library's database is damaged (%s): moved aside to %s and kept for "
                "inspection; the library is rebuilt from its voice folders",
                exc,
                moved,
            )
            self._check()
        # Held open, idle after one read: while a connection has the WAL open, SQLite keeps the
        # -wal and -shm files when others close, so that on a full disk reads still work and a
        # write fails cleanly (SQLITE_FULL) rather than every new connection failing to make them.
        self._keeper = sqlite3.connect(self.path, check_same_thread=False)
        self._keeper.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
        return moved

    def close(self) -> None:
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None

    def _check(self) -> None:
        with self.connect() as db:
            db.execute("PRAGMA journal_mode = WAL")
            problems = [str(row[0]) for row in db.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise _Damaged("; ".join(problems[:3]))
            # Reading the rows catches damage that the page check does not look at.
            if self._version(db) >= 1:
                self.load_all(db)

    def _move_aside(self) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        counter = 1
        while target.exists():
            counter += 1
            target = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{counter}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                os.replace(source, f"{target}{suffix}")
        return target

    @staticmethod
    def _version(db: sqlite3.Connection) -> int:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        return int(version)

    def legacy_voices(self) -> list[LegacyVoice] | None:
        """The voices of a database from before schema 1, to upgrade; None when it is current."""
        with self.connect() as db:
            if self._version(db) >= SCHEMA_VERSION:
                return None
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "voices" not in tables:
                return []
            samples = self._samples(db)
            return [
                LegacyVoice(
                    voice_from_row(row[:7], None, samples), latents_model=row[7], latents_digest=row[8]
                )
                for row in db.execute(
                    f"SELECT {VOICE_COLUMNS}, latents_model, latents_digest FROM voices ORDER BY created_at, id"
                )
            ]

    def create_schema(self) -> None:
        """The current schema, empty (an older one's tables are dropped: the folders keep all)."""
        with self.connect() as db:
            db.executescript(_SCHEMA)

    # --- rows ---

    @staticmethod
    def _samples(db: sqlite3.Connection) -> dict[str, list[LibrarySample]]:
        samples: dict[str, list[LibrarySample]] = {}
        for voice_id, sample_id, filename, seconds in db.execute(
            "SELECT voice_id, id, filename, seconds FROM samples ORDER BY voice_id, position"
        ):
            samples.setdefault(voice_id, []).append(LibrarySample(sample_id, filename, seconds))
        return samples

    def load_all(self, db: sqlite3.Connection | None = None) -> tuple[LibraryVoice, ...]:
        if db is None:
            with self.connect() as own:
                return self.load_all(own)
        samples = self._samples(db)
        return tuple(
            voice_from_row(row[:7], row[7], samples)
            for row in db.execute(f"SELECT {VOICE_COLUMNS}, owner FROM voices ORDER BY created_at, id")
        )

    def get(self, db: sqlite3.Connection, voice_id: str) -> LibraryVoice | None:
        return next((voice for voice in self.load_all(db) if voice.id == voice_id), None)

    @staticmethod
    def count(db: sqlite3.Connection) -> int:
        (count,) = db.execute("SELECT COUNT(*) FROM voices").fetchone()
        return int(count)

    @staticmethod
    def put(db: sqlite3.Connection, voice: LibraryVoice) -> None:
        """Insert or replace a voice's rows; sqlite3.IntegrityError when its owner has the name."""
        db.execute("DELETE FROM voices WHERE id = ?", (voice.id,))
        db.execute(
            "INSERT INTO voices (id, name, name_key, owner, language, description, created_at, "
            "updated_at, reference_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            voice_row(voice),
        )
        db.executemany(
            "INSERT INTO samples (id, voice_id, position, filename, seconds) VALUES (?, ?, ?, ?, ?)",
            [(s.id, voice.id, position, s.filename, s.seconds) for position, s in enumerate(voice.samples)],
        )

    @staticmethod
    def delete(db: sqlite3.Connection, voice_id: str) -> bool:
        return db.execute("DELETE FROM voices WHERE id = ?", (voice_id,)).rowcount > 0
