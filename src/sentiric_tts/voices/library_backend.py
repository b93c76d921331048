"""Which voice library a server uses, from its settings: the embedded one (folders and SQLite
under the data folder) by default, or a PostgreSQL database that several servers share when
TTS_LIBRARY_URL is set (docs/cluster.md)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sentiric_tts.voices.latent_shelves import LatentShelf
from sentiric_tts.voices.library_store import LibraryStore
from sentiric_tts.voices.voice_store import VoiceStore

if TYPE_CHECKING:
    from sentiric_tts.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LibraryBackend:
    store: VoiceStore
    latent_shelf: LatentShelf | Path | None
    """Where the latent cache keeps entries beyond memory (a folder: one file per entry)."""


def open_library(settings: Settings) -> LibraryBackend:
    """The library's store and the latent cache's shelf, opened (migrated, for PostgreSQL)."""
    url = settings.voices.library_url
    if url is None:
        return LibraryBackend(
            LibraryStore(settings.paths.voice_library_dir, settings.voices.library_max_voices),
            settings.paths.latents_dir,
        )
    try:  # the driver is an extra: only servers that share a library need it
        from sentiric_tts.voices.postgres_db import Database
        from sentiric_tts.voices.postgres_latents import PostgresShelf
        from sentiric_tts.voices.postgres_store import PostgresLibraryStore
    except ImportError as exc:
        raise RuntimeError(
            "TTS_LIBRARY_URL needs the PostgreSQL driver: pip install 'sentiric-tts[postgres]'"
        ) from exc
    db = Database(url)
    applied = db.open()
    log.info(
        "Voice library: PostgreSQL at %s (%s)",
        db.where,
        f"migrations {applied} applied" if applied else "schema current",
    )
    return LibraryBackend(PostgresLibraryStore(db, settings.voices.library_max_voices), PostgresShelf(db))
