"""The latent cache's shared layer in the voice library's database (latent_shelves.py): a
conditioning computed by one replica is read by the others instead of computed again."""

from __future__ import annotations

import psycopg

from sentiric_tts.failures import ServiceFailure
from sentiric_tts.voices.postgres_db import Database


class PostgresShelf:
    def __init__(self, db: Database) -> None:
        self._db = db

    def read(self, key: str) -> bytes | None:
        with self._db.connection() as db:
            row = db.execute("SELECT data FROM tts_latent_cache WHERE key = %s", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def write(self, key: str, data: bytes) -> None:
        try:
            with self._db.connection() as db:
                # A key names what the bytes were computed from: whoever wrote first wrote the same.
                db.execute(
                    "INSERT INTO tts_latent_cache (key, data) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
                    (key, data),
                )
        except (ServiceFailure, psycopg.Error) as exc:  # the cache's contract: OSError, kept in memory
            raise OSError(str(exc)) from exc

    def describe(self) -> str:
        return f"the voice library database ({self._db.where})"
