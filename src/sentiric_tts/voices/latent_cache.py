"""Cache of cloning conditioning (XTTS latents): an in-memory LRU backed by files on disk.

The key covers everything the conditioning depends on: the decoded reference audio, the model
(its fingerprint) and the conditioning settings. A restart reads the files instead of
recomputing; a changed model or setting simply misses.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from sentiric_tts.voices.durable_files import is_temporary, write_atomically

log = logging.getLogger(__name__)


class LatentCache:
    def __init__(self, directory: Path | None, capacity: int) -> None:
        self._directory = directory
        self._capacity = capacity
        self._memory: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.disk_hits = 0
        self.write_failures = 0
        """Conditionings that could not be written to disk (kept in memory only)."""
        self._failing = False
        if directory is not None and directory.is_dir():
            for entry in directory.iterdir():  # writes a crash interrupted
                if is_temporary(entry.name):
                    entry.unlink(missing_ok=True)

    @staticmethod
    def key(reference_digest: str, model_fingerprint: str, conditioning_tag: str) -> str:
        return hashlib.sha256(
            f"{reference_digest}|{model_fingerprint}|{conditioning_tag}".encode()
        ).hexdigest()

    def _path(self, key: str) -> Path | None:
        return None if self._directory is None else self._directory / f"{key}.latents"

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
        path = self._path(key)
        if path is not None and path.is_file():
            try:
                value = load(path.read_bytes())
            except Exception as exc:  # a damaged file is recomputed, not fatal
                log.warning("Ignoring unreadable cached conditioning %s: %s", path.name, exc)
            else:
                with self._lock:
                    self._remember(key, value)
                    self.hits += 1
                    self.disk_hits += 1
                return value
        with self._lock:
            self.misses += 1
        return None

    def put(self, key: str, value: object, dump: Callable[[object], bytes]) -> None:
        """Keep `value` in memory and on disk. The disk copy is optional: when it cannot be
        written (a full disk) it is left out, logged once until a write succeeds again."""
        with self._lock:
            self._remember(key, value)
        path = self._path(key)
        if path is None:
            return
        data = dump(value)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, data)  # a crash never leaves half a file under a valid key
        except OSError as exc:
            with self._lock:
                self.write_failures += 1
                first, self._failing = not self._failing, True
            if first:
                log.warning(
                    "Cloning conditioning kept in memory only: cannot write %s (%s)", path.parent, exc
                )
            return
        with self._lock:
            self._failing = False

    @property
    def entries(self) -> int:
        with self._lock:
            return len(self._memory)
