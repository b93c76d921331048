"""What each voice's speech measures before gain, so a stream's gain is right from its first
sample: seeded at start for the default voice and refined by every finished render."""

from __future__ import annotations

import math
import threading

_NEW_WEIGHT = 0.3  # exponential average: one odd sentence moves the estimate only a little


class VoiceLevels:
    def __init__(self) -> None:
        self._lufs: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, voice_id: str) -> float | None:
        with self._lock:
            return self._lufs.get(voice_id)

    def update(self, voice_id: str, lufs: float) -> None:
        if not math.isfinite(lufs):
            return
        with self._lock:
            old = self._lufs.get(voice_id)
            self._lufs[voice_id] = lufs if old is None else old + _NEW_WEIGHT * (lufs - old)
