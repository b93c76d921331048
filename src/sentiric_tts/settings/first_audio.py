"""How soon a request's first audio comes, against how much audio the service makes per second.

The knobs below act together on one trade-off, so one setting, the preset, chooses their
defaults; each knob set explicitly still wins over its preset."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from sentiric_tts.engines.thread_priority import stream_thread_priority
from sentiric_tts.settings.fields import SettingsGroup, setting

FirstAudioPreset = Literal["balanced", "fastest", "throughput"]

FIRST_AUDIO_PRESETS: dict[str, dict[str, Any]] = {
    # The measured defaults (docs/benchmarks.md): short first pieces, first-audio threads, stream
    # threads in SCHED_IDLE.
    "balanced": {
        "segment_chars": 40,
        "piper_first_frames": 48,
        "xtts_first_chunk_size": 8,
        "priority": True,
        "stream_worker_nice": 10,
        "stream_worker_idle_class": True,
    },
    # Shorter first pieces still: a little sooner, for a little more work per request.
    "fastest": {
        "segment_chars": 24,
        "piper_first_frames": 32,
        "xtts_first_chunk_size": 4,
        "priority": True,
        "stream_worker_nice": 10,
        "stream_worker_idle_class": True,
    },
    # No piece, cut or thread serves first audio alone: each was measured to cost a few percent
    # of audio per second.
    "throughput": {
        "segment_chars": 0,
        "piper_first_frames": 0,
        "xtts_first_chunk_size": 20,
        "priority": False,
        "stream_worker_nice": 0,
        "stream_worker_idle_class": False,
    },
}

_PRESET_NOTE = " Its default comes from TTS_FIRST_AUDIO_PRESET."


class FirstAudioSettings(SettingsGroup):
    title = "First audio"

    preset: FirstAudioPreset = setting(
        "balanced",
        env="TTS_FIRST_AUDIO_PRESET",
        description="What the service favours, as the defaults of the other settings of this "
        "section (each one set still wins). balanced: a new request's first audio comes early "
        "even under load, at a few percent of throughput. fastest: first pieces shorter still. "
        "throughput: most audio per second, first audio later (batch work).",
    )
    segment_chars: int = setting(
        40,
        env="TTS_FIRST_SEGMENT_CHARS",
        ge=0,
        le=1000,
        description="An opening sentence longer than this is cut after its first clause (comma, "
        "semicolon, colon, dash), so an engine that renders a segment at once (Piper with "
        "TTS_PIPER_STREAM_FIRST_FRAMES=0) starts speaking sooner; 0: never. Engines that stream "
        "inside a segment (XTTS, Piper by default) are not cut." + _PRESET_NOTE,
    )
    piper_first_frames: int = setting(
        48,
        env="TTS_PIPER_STREAM_FIRST_FRAMES",
        ge=0,
        le=1024,
        description="Piper decodes a sentence someone waits for in two pieces, the first this many "
        "frames long (256 samples each: 48 is ~0.56 s at 22.05 kHz), so its first audio does not "
        "wait for the whole sentence; 0: sentences whole." + _PRESET_NOTE,
    )
    xtts_first_chunk_size: int = setting(
        8,
        env="TTS_XTTS_FIRST_CHUNK_SIZE",
        ge=2,
        le=400,
        description="Audio tokens in the first streamed XTTS chunk of a sentence." + _PRESET_NOTE,
    )
    priority: bool = setting(
        True,
        env="TTS_FIRST_AUDIO_PRIORITY",
        description="Piper: as many more threads per instance that only start requests, while the "
        "threads continuing streams run at a lower OS priority (TTS_STREAM_WORKER_NICE), so a new "
        "request's first audio preempts sentences in progress instead of waiting for them." + _PRESET_NOTE,
    )
    stream_worker_nice: int = setting(
        10,
        env="TTS_STREAM_WORKER_NICE",
        ge=0,
        le=19,
        description="How much lower (Linux nice) the threads continuing streams run than those "
        "starting requests, when TTS_FIRST_AUDIO_PRIORITY is on; 0: the same priority." + _PRESET_NOTE,
    )
    stream_worker_idle_class: bool = setting(
        True,
        env="TTS_STREAM_WORKER_IDLE_CLASS",
        description="With a lower priority (TTS_STREAM_WORKER_NICE > 0), the threads continuing "
        "streams are also in Linux's SCHED_IDLE class: they use only cores that nothing else "
        "wants, and a starting request preempts them at once (nice alone leaves them ~10 %)." + _PRESET_NOTE,
    )

    @model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = cls.by_field_name(data)
        preset = data.get("preset", "balanced")
        # An unknown preset fills nothing: its own validation names the choices.
        for name, value in FIRST_AUDIO_PRESETS.get(preset if isinstance(preset, str) else "", {}).items():
            data.setdefault(name, value)
        return data

    def stream_priority(self) -> tuple[int, bool]:
        """The nice value and SCHED_IDLE class the threads continuing streams really get."""
        return stream_thread_priority(self.priority, self.stream_worker_nice, self.stream_worker_idle_class)
