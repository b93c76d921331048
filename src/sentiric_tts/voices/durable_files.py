"""Files that are either whole or absent, and how a full disk shows itself.

A file is written under a temporary name in its own folder, flushed to disk, then renamed over
its final name: a crash at any point leaves the old file or the new one, never half of either,
plus at most a temporary file that `is_temporary` recognises and a start-up sweep removes.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from pathlib import Path

TEMPORARY_SUFFIX = ".part"


def is_temporary(name: str) -> bool:
    """A file `write_temporary` made and nothing finished: safe to remove when nothing runs."""
    return name.startswith(".") and name.endswith(TEMPORARY_SUFFIX)


def sync_directory(directory: Path) -> None:
    """Make renames and new entries in `directory` durable (a power cut keeps them)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temporary(directory: Path, data: bytes, stem: str) -> Path:
    """`data` in a new temporary file in `directory`, flushed to disk; the caller renames it."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=f".{stem}.", suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, whole or not at all."""
    temporary = write_temporary(path.parent, data, path.name)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    sync_directory(path.parent)


def is_disk_full(exc: BaseException) -> bool:
    """Whether a write failed for want of space (or quota), from the OS or from SQLite."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        # SHMSIZE: the shared-memory file could not grow, which on Linux means no space left.
        return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR_SHMSIZE)
    return False
