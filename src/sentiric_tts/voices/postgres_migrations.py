"""The voice library's PostgreSQL schema, as numbered steps applied once each, in order.

`tts_schema_migrations` records the steps a database has. Every start applies the missing ones
under a session advisory lock, so replicas starting together apply each step exactly once: the
others wait on the lock, then find it recorded. Each step runs in its own transaction with its
record (PostgreSQL's DDL is transactional), so a step is either wholly there or not at all.
A step, once released, is never edited: a change of schema is a new step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg

log = logging.getLogger(__name__)

LOCK_KEY = 0x5E47_7715_1B2A_0001
"""The advisory lock that serialises migrations (any constant; ours alone in a shared database)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "voices, samples with their clips, latents per model",
        """
        -- Bumped by every change of voices or samples: replicas reload their listing when it moves,
        -- and its row lock serialises writers (the voice count limit holds across replicas).
        CREATE TABLE tts_library_state (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            generation bigint NOT NULL
        );
        INSERT INTO tts_library_state (singleton, generation) VALUES (true, 0);
        CREATE TABLE tts_voices (
            id text PRIMARY KEY,
            name text NOT NULL,
            name_key text NOT NULL,
            owner text,
            language text,
            description text NOT NULL DEFAULT '',
            created_at text NOT NULL,
            updated_at text NOT NULL,
            reference_digest text NOT NULL
        );
        -- Names are unique per owner (NULL: made while the API was open), without regard to case.
        CREATE UNIQUE INDEX tts_voices_owner_name ON tts_voices (COALESCE(owner, ''), name_key);
        CREATE TABLE tts_voice_samples (
            id text PRIMARY KEY,
            voice_id text NOT NULL REFERENCES tts_voices (id) ON DELETE CASCADE,
            position integer NOT NULL,
            filename text NOT NULL,
            seconds double precision NOT NULL,
            clip bytea NOT NULL
        );
        CREATE INDEX tts_voice_samples_voice ON tts_voice_samples (voice_id, position);
        -- One row per model: replicas running other conditioning settings keep theirs apart.
        CREATE TABLE tts_voice_latents (
            voice_id text NOT NULL REFERENCES tts_voices (id) ON DELETE CASCADE,
            model text NOT NULL,
            reference_digest text NOT NULL,
            data bytea NOT NULL,
            PRIMARY KEY (voice_id, model)
        );
        """,
    ),
    Migration(
        2,
        "the latent cache's shared layer",
        """
        CREATE TABLE tts_latent_cache (
            key text PRIMARY KEY,
            data bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        """,
    ),
)

_RECORD_TABLE = """
CREATE TABLE IF NOT EXISTS tts_schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def migrate(db: psycopg.Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply the steps `db` lacks (an autocommit connection); returns the versions applied."""
    applied: list[int] = []
    db.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        db.execute(_RECORD_TABLE)
        done = {version for (version,) in db.execute("SELECT version FROM tts_schema_migrations")}
        for step in migrations:
            if step.version in done:
                continue
            with db.transaction():
                db.execute(step.sql.encode())  # bytes: several statements, no parameters
                db.execute(
                    "INSERT INTO tts_schema_migrations (version, name) VALUES (%s, %s)",
                    (step.version, step.name),
                )
            applied.append(step.version)
            log.info("Voice library database: applied migration %d (%s)", step.version, step.name)
        newer = sorted(done - {step.version for step in migrations})
        if newer:
            # A newer release ran here (a rolling upgrade): its steps only add, so this one goes on.
            log.warning("Voice library database has migrations this release does not know: %s", newer)
    finally:
        db.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return applied


def pending(db: psycopg.Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """The versions of the steps `db` lacks, read without changing anything (a dry run)."""
    row = db.execute("SELECT to_regclass('tts_schema_migrations')").fetchone()
    if row is None or row[0] is None:
        return [step.version for step in migrations]
    done = {version for (version,) in db.execute("SELECT version FROM tts_schema_migrations")}
    return [step.version for step in migrations if step.version not in done]
