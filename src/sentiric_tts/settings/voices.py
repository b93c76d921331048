"""Cloning from reference clips, and the voice library that keeps cloned voices."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentiric_tts.settings.fields import SettingsGroup, setting

if TYPE_CHECKING:
    from sentiric_tts.audio.reference import ReferenceLimits

LONGEST_REFERENCE_SECONDS = 300.0
"""The most TTS_CLONE_MAX_SECONDS may be, so that a stored clip (taken under any setting) is
decoded within a bound when it is played back."""


class VoiceSettings(SettingsGroup):
    title = "Cloning and the voice library"

    clone_max_files: int = setting(
        5, env="TTS_CLONE_MAX_FILES", ge=1, le=20, description="Most reference clips per clone."
    )
    clone_max_file_bytes: int = setting(
        10 * 1024 * 1024,
        env="TTS_CLONE_MAX_FILE_BYTES",
        ge=1024,
        description="Largest accepted reference clip, in bytes.",
    )
    clone_max_seconds: float = setting(
        30.0,
        env="TTS_CLONE_MAX_SECONDS",
        gt=0,
        le=LONGEST_REFERENCE_SECONDS,
        description="Longest accepted reference clip, in decoded seconds (at most 300).",
    )
    clone_min_speech_seconds: float = setting(
        1.0,
        env="TTS_CLONE_MIN_SPEECH_SECONDS",
        ge=0,
        description="Least speech a reference clip must hold, in seconds.",
    )
    latent_cache_entries: int = setting(
        256,
        env="TTS_LATENT_CACHE_ENTRIES",
        ge=1,
        description="Cloned-voice conditionings kept in memory (all are kept on disk).",
    )
    library_max_voices: int = setting(
        1000,
        env="TTS_VOICE_LIBRARY_MAX_VOICES",
        ge=1,
        description="Most voices the voice library holds; creating more answers 409.",
    )

    library_url: str | None = setting(
        None,
        env="TTS_LIBRARY_URL",
        pattern=r"^postgres(ql)?://",
        description="Unset: the voice library lives in the data folder (one server). A "
        "postgresql://user:password@host:port/db URL: voices, clips and computed latents live in "
        "that database, shared by every server given the same URL (docs/cluster.md; needs the "
        "`postgres` extra).",
    )

    def reference_limits(self) -> ReferenceLimits:
        from sentiric_tts.audio.reference import ReferenceLimits  # when called: see audio.py

        return ReferenceLimits(
            max_files=self.clone_max_files,
            max_file_bytes=self.clone_max_file_bytes,
            max_seconds=self.clone_max_seconds,
            min_speech_seconds=self.clone_min_speech_seconds,
        )
