"""Connections to the voice library's PostgreSQL database, and what its failures mean to a client.

One pool per process, shared by the library store and the latent cache's shelf. Connections are
checked when taken from the pool, so that after a database restart the first requests do not fail
on connections it dropped. A database that cannot be reached (down, restarting, every connection
taken for `timeout_s`) is LibraryUnavailable (503, retry after a pause); a full disk there is the
same 507 as a full library folder; the driver's own text goes to the log only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from sentiric_tts.voices.library_rules import LibraryUnavailable, storage_full
from sentiric_tts.voices.postgres_migrations import migrate, pending

log = logging.getLogger(__name__)


def describe(url: str) -> str:
    """Where a URL points, without its password (for logs and errors)."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unparsable PostgreSQL URL"
    host = parts.get("host") or "localhost"
    return f"postgresql://{host}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


@contextmanager
def client_errors() -> Iterator[None]:
    """Database failures as the errors a client reads."""
    try:
        yield
    except psycopg.errors.DiskFull as exc:
        log.warning("Voice library database: a change was refused, its disk is full (%s)", exc)
        raise storage_full() from exc
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        log.warning("Voice library database unreachable: %s", exc)
        raise LibraryUnavailable() from exc


class Database:
    def __init__(self, url: str, *, max_connections: int = 8, timeout_s: float = 5.0) -> None:
        self.url = url
        self.where = describe(url)
        self._connect_timeout = max(2, round(timeout_s))  # libpq's least
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            timeout=timeout_s,
            open=False,
            check=ConnectionPool.check_connection,
            # The pool retries a failed connection with a growing backoff until this; kept short,
            # so that once the database is back requests find it in seconds, not minutes.
            reconnect_timeout=max(10.0, 2 * timeout_s),
            kwargs={"autocommit": True, "connect_timeout": self._connect_timeout},
            name="voice-library",
        )

    def open(self, *, dry_run: bool = False) -> list[int]:
        """Apply missing migrations, then open the pool; returns the migrations applied (with
        `dry_run`, those missing, and nothing is changed). Raises RuntimeError, saying where, when
        the database cannot be reached: a replica that cannot see the library should not start
        serving."""
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=self._connect_timeout) as db:
                applied = pending(db) if dry_run else migrate(db)
            self._pool.open(wait=True)
        except psycopg.Error as exc:
            raise RuntimeError(f"The voice library database at {self.where} cannot be used: {exc}") from exc
        return applied

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled autocommit connection; its failures read as client errors."""
        with client_errors(), self._pool.connection() as db:
            yield db

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        with self.connection() as db, db.transaction():
            yield db

    def close(self) -> None:
        self._pool.close()
