"""Where the service keeps what it stores: one data folder, and folders under it by default."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

from pydantic import model_validator

from sentiric_tts.settings.fields import SettingsGroup, setting

DEFAULT_DATA_DIR = Path("./data")

_UNDER_DATA_DIR = {
    "xtts_model_dir": Path("models") / "xtts_v2",
    "cache_dir": Path("cache"),
    "piper_voices_dir": Path("voices") / "piper",
    "voice_library_dir": Path("voices"),
}
"""The folders that default to a place under data_dir, so that moving data_dir moves them all."""


class PathSettings(SettingsGroup):
    title = "Folders"

    data_dir: Path = setting(
        DEFAULT_DATA_DIR, env="TTS_DATA_DIR", description="Root of everything the service stores."
    )
    xtts_model_dir: Path = setting(
        env="TTS_XTTS_MODEL_DIR",
        description="XTTS v2 weights: config.json, model.pth, vocab.json, speakers_xtts.pth "
        "(default: <data_dir>/models/xtts_v2).",
    )
    cache_dir: Path = setting(
        env="TTS_CACHE_DIR",
        description="Caches that survive restarts, e.g. cloning latents (default: <data_dir>/cache).",
    )
    piper_voices_dir: Path = setting(
        env="TTS_PIPER_VOICES_DIR",
        description="Extra Piper voices (*.onnx with *.onnx.json) picked up at start "
        "(default: <data_dir>/voices/piper).",
    )
    voice_library_dir: Path = setting(
        env="TTS_VOICE_LIBRARY_DIR",
        description="The voice library: library.db and one folder of clips and latents per saved "
        "voice (default: <data_dir>/voices).",
    )

    @model_validator(mode="before")
    @classmethod
    def _folders_under_data_dir(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = cls.by_field_name(data)
        data_dir = data.get("data_dir", DEFAULT_DATA_DIR)
        if not isinstance(data_dir, str | PathLike):
            return data  # not a folder: its own validation says so
        for name, relative in _UNDER_DATA_DIR.items():
            if data.get(name) is None:
                data[name] = Path(data_dir) / relative
        return data

    @property
    def gradio_files_dir(self) -> Path:
        """Where Gradio keeps uploads and results: a cache, in the data folder."""
        return self.cache_dir / "gradio"

    @property
    def latents_dir(self) -> Path:
        """Cloned voices' conditioning, kept across restarts."""
        return self.cache_dir / "latents"
