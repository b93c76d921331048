"""Where the latent cache keeps conditioning beyond its in-memory layer (latent_cache.py).

A shelf maps a cache key to the serialised conditioning. `FileShelf` keeps one file per key in a
folder (one server); `PostgresShelf` (postgres_latents.py) keeps rows in the voice library's
database, so a conditioning computed by one replica of a cluster is found by all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from sentiric_tts.voices.durable_files import is_temporary, write_atomically


class LatentShelf(Protocol):
    def read(self, key: str) -> bytes | None:
        """The bytes kept under `key`; None when there are none. May raise: the cache then
        recomputes, as for a miss."""
        ...

    def write(self, key: str, data: bytes) -> None:
        """Keep `data` under `key`; OSError when it cannot (the cache keeps it in memory only)."""
        ...

    def describe(self) -> str:
        """Where the bytes go, for the log."""
        ...


class FileShelf:
    """One `<key>.latents` file per entry, written whole or not at all."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        if directory.is_dir():
            for entry in directory.iterdir():  # writes a crash interrupted
                if is_temporary(entry.name):
                    entry.unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.latents"

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomically(self._path(key), data)  # a crash never leaves half a file under a valid key

    def describe(self) -> str:
        return str(self.directory)
