"""Which engine runs, how many of it, and each engine's own settings."""

from __future__ import annotations

from typing import Literal

from sentiric_tts.settings.fields import SettingsGroup, setting

EngineName = Literal["auto", "xtts", "piper"]


class EngineSettings(SettingsGroup):
    title = "Engine"

    name: EngineName = setting(
        "auto",
        env="TTS_ENGINE",
        description="Engine: auto takes XTTS when its weights are present, else Piper.",
    )
    default_language: str = setting(
        "en", env="TTS_DEFAULT_LANGUAGE", description="Language used when a request names none."
    )
    default_voice: str = setting(
        "",
        env="TTS_DEFAULT_VOICE",
        description="Voice used when a request names none; empty means the engine's default.",
    )
    instances: int = setting(
        1,
        env="TTS_ENGINE_INSTANCES",
        ge=1,
        le=16,
        description="Engine instances (e.g. one per GPU or model replica), each with its own copy "
        "of the model in memory and its own worker threads. Piper needs one: its calls already "
        "run in parallel (TTS_ENGINE_WORKERS).",
    )
    workers: int = setting(
        0,
        env="TTS_ENGINE_WORKERS",
        ge=0,
        le=64,
        description="Threads per engine instance that advance streams, when its calls can run in "
        "parallel (Piper: one call per thread); 0: one per usable CPU core. XTTS: one per admitted "
        "request (each waits on its sentence in the engine's batch loop).",
    )


class XttsSettings(SettingsGroup):
    title = "XTTS"

    allow_download: bool = setting(
        False,
        env="TTS_XTTS_ALLOW_DOWNLOAD",
        description="Download the XTTS v2 weights on first run when they are missing.",
    )
    accept_cpml: bool = setting(
        False,
        env="TTS_XTTS_ACCEPT_CPML",
        description="Set true to state you have read and agree to the Coqui Public Model License "
        "(https://coqui.ai/cpml); needed for the download.",
    )
    download_url: str = setting(
        "https://huggingface.co/coqui/XTTS-v2/resolve/main",
        env="TTS_XTTS_DOWNLOAD_URL",
        description="Where the XTTS v2 files are downloaded from.",
    )
    device: Literal["auto", "cuda", "cpu"] = setting(
        "auto", env="TTS_XTTS_DEVICE", description="Where XTTS runs: auto takes CUDA when available."
    )
    dtype: Literal["float32", "float16", "bfloat16"] = setting(
        "float32",
        env="TTS_XTTS_DTYPE",
        description="dtype of the XTTS GPT (its weights and KV cache) on CUDA; the vocoder and "
        "cloning stay float32, and the CPU always runs float32.",
    )
    max_batch: int = setting(
        0,
        env="TTS_XTTS_MAX_BATCH",
        ge=0,
        le=256,
        description="XTTS sentences advanced together in one decode step, each with a KV cache "
        "slot allocated at start (full-size model: ~128 MiB per slot in float16, twice that in "
        "float32); 0: 32 on CUDA, 4 on the CPU. More sentences in flight wait for a slot.",
    )
    cuda_graphs: bool = setting(
        True,
        env="TTS_XTTS_CUDA_GRAPHS",
        description="Replay the XTTS decode step from CUDA graphs captured at start (one per "
        "batch-size bucket); a capture that fails falls back to eager steps with one log line.",
    )
    stream_chunk_size: int = setting(
        20,
        env="TTS_XTTS_STREAM_CHUNK_SIZE",
        ge=2,
        le=400,
        description="Audio tokens per streamed XTTS chunk (the first one: TTS_XTTS_FIRST_CHUNK_SIZE).",
    )
    min_new_tokens: int = setting(
        0,
        env="TTS_XTTS_MIN_NEW_TOKENS",
        ge=0,
        description="Force at least this many audio tokens per sentence (0: off).",
    )
    max_new_tokens: int = setting(
        0,
        env="TTS_XTTS_MAX_NEW_TOKENS",
        ge=0,
        description="Cap audio tokens per sentence (0: the model's own limit).",
    )


class PiperSettings(SettingsGroup):
    title = "Piper"

    duration_noise: float = setting(
        0.0,
        env="TTS_PIPER_DURATION_NOISE",
        ge=0.0,
        le=2.0,
        description="Piper's phoneme-duration noise (noise_w). 0 makes a text's duration "
        "reproducible; the voices' own 0.8 varies rhythm from run to run.",
    )
    cpu_arena: bool = setting(
        True,
        env="TTS_PIPER_CPU_ARENA",
        description="onnxruntime's CPU memory arena for Piper: ~25 % faster; resident memory grows "
        "in steps to the largest sentence's size and stays there. false: smaller, slower.",
    )
    threads: int = setting(
        1,
        env="TTS_PIPER_THREADS",
        ge=0,
        le=64,
        description="CPU threads a Piper call computes with when other calls run beside it "
        "(requests at once, one per engine worker); 0: onnxruntime's choice (every core).",
    )
    lone_call_threads: int = setting(
        0,
        env="TTS_PIPER_LONE_CALL_THREADS",
        ge=0,
        le=64,
        description="CPU threads a Piper call computes with when it starts alone (one caller: "
        "faster first audio and stream); 0: every core. Costs a second copy of each voice in "
        "memory; set it equal to TTS_PIPER_THREADS for no second copy.",
    )
