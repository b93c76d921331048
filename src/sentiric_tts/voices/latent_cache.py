"""Cache of cloning conditioning (XTTS latents): an in-memory LRU per process, backed by a
persistent shelf (latent_shelves.py): files on disk, or the voice library's PostgreSQL database
when TTS_LIBRARY_URL is set, so that every replica of a cluster finds what one computed.

The key covers everything the conditioning depends on: the decoded reference audio, the model
(its fingerprint) and the conditioning settings. A restart reads the shelf instead of
recomputing; a changed model or setting simply misses.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from sentiric_tts.voices.latent_shelves import FileShelf, LatentShelf

log = logging.getLogger(__name__)


class LatentCache:
    def __init__(self, shelf: LatentShelf | Path | None, capacity: int) -> None:
        """`shelf`: where entries persist (a folder: one file per entry); None: memory only."""
        self._shelf: LatentShelf | None = FileShelf(shelf) if isinstance(shelf, Path) else shelf
        self._capacity = capacity
        self._memory: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.disk_hits = 0
        self.write_failures = 0
        """Conditionings that could not be written to disk (kept in memory only)."""
        self._failing = False

    @staticmethod
    def key(reference_digest: str, model_fingerprint: str, conditioning_tag: str) -> str:
        return hashlib.sha256(
            f"{reference_digest}|{model_fingerprint}|{conditioning_tag}".encode()
        ).hexdigest()

    def _remember(self, key: str, value: object) -> None:
        self._memory[key] = value
        self._memory.move_to_end(key)
        while len(self._memory) > self._capacity:
            self._memory.popitem(last=False)

    def get(self, key: str, load: Callable[[bytes], object]) -> object | None:
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                self.hits += 1
                return self._memory[key]
        if self._shelf is not None:
            try:
                data = self._shelf.read(key)
                value = None if data is None else load(data)
            except Exception as exc:  # a damaged entry, an unreachable database: recomputed
                log.warning("Ignoring unreadable cached conditioning %s: %s", key, exc)
                value = None
            if value is not None:
                with self._lock:
                    self._remember(key, value)
                    self.hits += 1
                    self.disk_hits += 1
                return value
        with self._lock:
            self.misses += 1
        return None

    def put(self, key: str, value: object, dump: Callable[[object], bytes]) -> None:
        """Keep `value` in memory and on the shelf. The shelf's copy is optional: when it cannot
        be written (a full disk, a database down) it is left out, logged once until a write
        succeeds again."""
        with self._lock:
            self._remember(key, value)
        if self._shelf is None:
            return
        data = dump(value)
        try:
            self._shelf.write(key, data)
        except OSError as exc:
            with self._lock:
                self.write_failures += 1
                first, self._failing = not self._failing, True
            if first:
                log.warning(
                    "Cloning conditioning kept in memory only: cannot write to %s (%s)",
                    self._shelf.describe(),
                    exc,
                )
            return
        with self._lock:
            self._failing = False

    @property
    def entries(self) -> int:
        with self._lock:
            return len(self._memory)
