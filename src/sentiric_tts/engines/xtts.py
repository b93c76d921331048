"""Coqui XTTS v2 engine (coqui-tts 0.28.x), batched.

Weights are loaded through coqui-tts's own loading code (`XttsConfig.load_json`, `Xtts(config)`,
`Xtts.load_checkpoint`), so real v2 weights and the random test checkpoint take the same path.

Synthesis runs on one stepping thread per model (xtts_batch.BatchLoop): every sentence in flight
is advanced by one audio token per step in one batched pass of coqui's GPT modules
(xtts_gpt.BatchedGpt, a static KV cache per sequence), with per-sequence sampling
(xtts_sampling), and its latents are vocoded window by window (xtts_vocoder.StreamingVocoder),
which gives the audio of one whole-sentence decode at a cost linear in the sentence's length. A
sentence's first chunk comes after `first_chunk_size` tokens, later ones every
`stream_chunk_size`. Token limits (`min_new_tokens` / `max_new_tokens`) are per call, never stored
on the model.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from sentiric_tts.engines import torch_threads
from sentiric_tts.engines.base import EngineError, GenerationParams, Voice, VoiceInfo
from sentiric_tts.engines.xtts_batch import BatchLoop, SequenceFailed, SequenceRequest
from sentiric_tts.engines.xtts_download import XTTS_FILES, missing_files
from sentiric_tts.engines.xtts_sampling import Sampling

logger = logging.getLogger(__name__)

REQUIRED_FILES = XTTS_FILES
PREFERRED_DEFAULT_SPEAKER = "Claribel Dervla"

# Sampling defaults used when a request leaves a parameter as None.
#
# coqui-tts disagrees with itself here:
#   - `Xtts.inference` / `Xtts.inference_stream` signatures: temperature 0.75, top_k 50,
#     top_p 0.85, repetition_penalty 10.0, length_penalty 1.0;
#   - the `XttsConfig` dataclass: temperature 0.85, repetition_penalty 2.0 (top_k 50, top_p 0.85);
#   - the config.json shipped with the v2 weights, which coqui's own high-level path
#     (`TTS(...).tts()` -> `Xtts.synthesize`) uses: temperature 0.75, repetition_penalty 5.0,
#     top_k 50, top_p 0.85, length_penalty 1.0 (also the values of Coqui's XTTS v2 demo).
# We take the shipped-weights values: they are what the released model is run with by its own
# high-level API. (The dataclass values are generic placeholders, and 10.0 is only a signature
# default.) length_penalty only matters for beam search, which streaming never uses.
DEFAULT_SAMPLING: dict[str, float] = {
    "temperature": 0.75,
    "top_k": 50,
    "top_p": 0.85,
    "repetition_penalty": 5.0,
    "length_penalty": 1.0,
}

# Keys of GenerationParams.extra that this engine understands (others are ignored).
#   length_penalty  : float, as in coqui-tts.
#   min_new_tokens  : per-request override of the engine's min_new_tokens (0: off).
#   max_new_tokens  : per-request override of the engine's max_new_tokens (0: model limit).
#   do_sample       : 0 for greedy decoding (deterministic; tests use it), 1 (default) to sample.
EXTRA_KEYS = ("length_penalty", "min_new_tokens", "max_new_tokens", "do_sample")

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}


def _null_position_embeddings(range: torch.Tensor, dim: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.zeros((range.shape[0], range.shape[1], dim), device=range.device, dtype=dtype)


def _cast_gpt_for_generation(gpt: Any, dtype: torch.dtype) -> None:
    """Put the modules used per generated token in `dtype`.

    The HiFiGAN decoder, the speaker encoder and the GPT's conditioning encoder + perceiver (used
    only for cloning) stay float32: coqui's GroupNorm32 there computes in float32 and cannot take
    half-precision weights, and they are not on the per-token hot path anyway.
    """
    for module in (
        gpt.gpt,
        gpt.mel_embedding,
        gpt.mel_pos_embedding,
        gpt.text_embedding,
        gpt.text_pos_embedding,
        gpt.final_norm,
        gpt.mel_head,
        gpt.text_head,
    ):
        module.to(dtype)
    # coqui's GPT2 adds float32 zero "position embeddings" to its inputs, which would promote
    # the hidden states back to float32: make them the GPT's dtype.
    gpt.gpt.wpe = functools.partial(_null_position_embeddings, dim=gpt.model_dim, dtype=dtype)


class XttsWeightsMissing(FileNotFoundError):
    """The XTTS model folder lacks one or more of the required files."""


@dataclass(frozen=True)
class XttsConditioning:
    """Speaker conditioning for a cloned voice: what `clone_conditioning` returns.

    gpt_cond_latent: [1, 32, gpt_dim] GPT conditioning latents (v2: gpt_dim 1024).
    speaker_embedding: [1, 512, 1] HiFiGAN speaker embedding.
    Kept on the CPU (cacheable, picklable); moved to the engine's device at use.
    """

    gpt_cond_latent: torch.Tensor
    speaker_embedding: torch.Tensor


def _fingerprint(model_dir: Path) -> str:
    """Content-based: stable across copies and touches, changes when any weight file changes."""
    h = hashlib.sha256()
    for name in REQUIRED_FILES:
        path = model_dir / name
        size = path.stat().st_size
        h.update(f"{name}:{size}\n".encode())
        with path.open("rb") as f:
            h.update(f.read(1 << 20))
            if size > 2 << 20:
                f.seek(-(1 << 20), 2)
                h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineError(f"XTTS device {device!r} requested but CUDA is not available")
    return device


def _resolve_dtype(dtype: str, device: str) -> torch.dtype:
    name = _DTYPE_ALIASES.get(dtype, dtype)
    if name not in _DTYPES:
        raise ValueError(f"unknown XTTS dtype {dtype!r}; expected one of {sorted(_DTYPES)}")
    if name != "float32" and not device.startswith("cuda"):
        logger.warning(
            "XTTS dtype %s requested on %s: reduced precision is only used on CUDA "
            "(CPU kernels for it are slow or missing), running float32",
            name,
            device,
        )
        return torch.float32
    return _DTYPES[name]


class XttsEngine:
    """XTTS v2 through coqui-tts. Use `XttsEngine.load(model_dir, ...)`."""

    name = "xtts"
    supports_cloning = True
    kind = "batched"
    streams_within_segment = True

    def __init__(
        self,
        model: Any,
        config: Any,
        *,
        model_dir: Path,
        device: str,
        dtype: torch.dtype,
        stream_chunk_size: int,
        first_chunk_size: int,
        min_new_tokens: int,
        max_new_tokens: int,
        fingerprint: str,
        max_batch: int = 4,
        max_ahead: int = 2,
        cuda_graphs: bool = False,
    ) -> None:
        if max_batch < 1 or max_ahead < 1:
            raise ValueError("max_batch and max_ahead must be >= 1")
        if stream_chunk_size < 1 or first_chunk_size < 1:
            raise ValueError("stream_chunk_size and first_chunk_size must be >= 1")
        if min_new_tokens < 0 or max_new_tokens < 0:
            raise ValueError("min_new_tokens and max_new_tokens must be >= 0")
        self.model = model
        self.config = config
        self.model_dir = model_dir
        self.device = device
        self.dtype = dtype
        self.stream_chunk_size = stream_chunk_size
        self.first_chunk_size = first_chunk_size
        self.min_new_tokens = min_new_tokens
        self.max_new_tokens = max_new_tokens
        self.sample_rate = int(config.audio.output_sample_rate)
        self.max_batch = max_batch
        """Sentences advanced together in one step (the scheduler runs as many calls at once)."""
        self.max_ahead = max_ahead
        self.cuda_graphs = cuda_graphs and device.startswith("cuda")
        """Whether warm-up captures the decode step's CUDA graphs."""
        self._loop: BatchLoop | None = None
        self._fingerprint = fingerprint
        self._languages = self._usable_languages(list(config.languages))
        speakers = model.speaker_manager.speakers if model.speaker_manager is not None else {}
        self._speakers: dict[str, dict[str, torch.Tensor]] = dict(speakers)
        if not self._speakers:
            raise EngineError(f"no built-in speakers in {model_dir / 'speakers_xtts.pth'}")

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(
        cls,
        model_dir: Path,
        *,
        device: str = "auto",
        dtype: str = "float32",
        stream_chunk_size: int = 20,
        first_chunk_size: int = 8,
        min_new_tokens: int = 0,
        max_new_tokens: int = 0,
        max_batch: int = 0,
        max_ahead: int = 2,
        cuda_graphs: bool = True,
    ) -> XttsEngine:
        """`max_batch` 0: 32 sentences at once on CUDA, 4 on the CPU (whose cores a batch of
        4 already fills, and whose KV cache then takes ~1 GiB at full size)."""
        model_dir = Path(model_dir)
        missing = missing_files(model_dir)
        if missing:
            raise XttsWeightsMissing(
                f"XTTS weights folder {model_dir.resolve()} is missing: {', '.join(missing)} "
                f"(expected {', '.join(REQUIRED_FILES)})"
            )
        resolved_device = _resolve_device(device)
        torch_dtype = _resolve_dtype(dtype, resolved_device)
        on_cpu = resolved_device == "cpu"
        if on_cpu:
            # The batch loop's thread alone runs torch with every core (see torch_threads).
            torch_threads.one_thread_elsewhere()
        from TTS.tts.configs.xtts_config import XttsConfig
        from TTS.tts.models.xtts import Xtts

        config = XttsConfig()
        config.load_json(str(model_dir / "config.json"))

        def build() -> Any:
            # Xtts(config) is what the deprecated Xtts.init_from_config(config) does in 0.28.
            model = Xtts(config)
            model.load_checkpoint(
                config,
                checkpoint_dir=str(model_dir),
                vocab_path=str(model_dir / "vocab.json"),
                speaker_file_path=str(model_dir / "speakers_xtts.pth"),
                eval=True,
            )
            return model

        try:
            model = torch_threads.on_own_thread(build, "xtts-load") if on_cpu else build()
        except Exception as exc:
            raise EngineError(f"could not load XTTS weights from {model_dir.resolve()}: {exc}") from exc
        # load_checkpoint(eval=True) already put the GPT and decoder in eval mode.
        model.to(resolved_device)
        if torch_dtype != torch.float32:
            _cast_gpt_for_generation(model.gpt, torch_dtype)
        if resolved_device == "cuda":
            resolved_device = f"cuda:{torch.cuda.current_device()}"
        engine = cls(
            model,
            config,
            model_dir=model_dir,
            device=resolved_device,
            dtype=torch_dtype,
            stream_chunk_size=stream_chunk_size,
            first_chunk_size=first_chunk_size,
            min_new_tokens=min_new_tokens,
            max_new_tokens=max_new_tokens,
            fingerprint=_fingerprint(model_dir),
            max_batch=max_batch or (32 if resolved_device.startswith("cuda") else 4),
            max_ahead=max_ahead,
            cuda_graphs=cuda_graphs,
        )
        logger.info(
            "XTTS loaded from %s on %s (%s, batches of up to %d): %d languages, %d speakers",
            model_dir,
            engine.device,
            str(torch_dtype).removeprefix("torch."),
            engine.max_batch,
            len(engine._languages),
            len(engine._speakers),
        )
        return engine

    # Languages whose text frontend needs optional packages (coqui-tts[zh], coqui-tts[ja], ...).
    _PROBE_TEXT: ClassVar[dict[str, str]] = {"zh-cn": "你好", "ja": "こんにちは", "ko": "안녕"}

    def _usable_languages(self, languages: list[str]) -> list[str]:
        """Drop languages whose tokenizer cannot run here, so requests get a clear 4xx, not a 5xx."""
        usable = []
        for language in languages:
            probe = self._PROBE_TEXT.get(language)
            if probe is not None:
                try:
                    self.model.tokenizer.encode(probe, lang=language)
                except Exception as exc:  # ImportError, or a half-installed dictionary
                    logger.warning(
                        "XTTS language %s disabled: its text frontend needs extra packages "
                        "(pip install 'coqui-tts[zh,ja]'): %s",
                        language,
                        exc,
                    )
                    continue
            usable.append(language)
        return usable

    # ------------------------------------------------------------------ listings

    def languages(self) -> list[str]:
        return list(self._languages)

    def voices(self) -> list[VoiceInfo]:
        langs = tuple(self._languages)
        return [
            VoiceInfo(id=name, name=name, kind="studio", languages=langs, description="XTTS studio speaker")
            for name in self._speakers
        ]

    def default_voice(self) -> str:
        if PREFERRED_DEFAULT_SPEAKER in self._speakers:
            return PREFERRED_DEFAULT_SPEAKER
        return next(iter(self._speakers))

    def max_segment_chars(self, language: str) -> int:
        return int(self.model.tokenizer.char_limits.get(language.split("-")[0], 250))

    def fingerprint(self) -> str:
        return self._fingerprint

    # ------------------------------------------------------------------ synthesis

    def _conditioning(self, voice: Voice) -> tuple[torch.Tensor, torch.Tensor]:
        cond = voice.conditioning
        if cond is None:
            try:
                speaker = self._speakers[voice.id]
            except KeyError:
                raise KeyError(
                    f"unknown XTTS speaker {voice.id!r}; built-in speakers: "
                    f"{', '.join(sorted(self._speakers))}"
                ) from None
            latent, embedding = speaker["gpt_cond_latent"], speaker["speaker_embedding"]
        elif isinstance(cond, XttsConditioning):
            latent, embedding = cond.gpt_cond_latent, cond.speaker_embedding
        else:
            kind = type(cond).__name__
            raise TypeError(f"voice {voice.id!r}: conditioning is {kind}, not XttsConditioning")
        gpt_dtype = self.model.gpt.text_embedding.weight.dtype
        return (
            latent.to(self.device, dtype=gpt_dtype),
            embedding.to(self.device, dtype=torch.float32),
        )

    def _sampling(self, params: GenerationParams) -> Sampling:
        """The request's sampling, the released model's defaults where it names none."""
        extra = params.extra or {}

        def pick(name: str, value: float | None) -> float:
            return DEFAULT_SAMPLING[name] if value is None else value

        min_new, max_new = self._token_limits(params)
        penalty = float(pick("repetition_penalty", params.repetition_penalty))
        if not bool(extra.get("do_sample", 1)):
            # Greedy decoding: what coqui's sampler does with top_k 1 (the highest score wins).
            return Sampling(1.0, 1, 1.0, penalty, min_new, max_new)
        return Sampling(
            temperature=float(pick("temperature", params.temperature)),
            top_k=int(pick("top_k", params.top_k)),
            top_p=float(pick("top_p", params.top_p)),
            repetition_penalty=penalty,
            min_new_tokens=min_new,
            max_new_tokens=max_new,
        )

    def _token_limits(self, params: GenerationParams) -> tuple[int, int]:
        """(min_new_tokens, max_new_tokens) for one call; max is always concrete."""
        extra = params.extra or {}
        model_max = int(self.model.gpt.max_gen_mel_tokens)
        max_new = int(extra.get("max_new_tokens", self.max_new_tokens))
        max_new = model_max if max_new <= 0 else min(max_new, model_max)
        min_new = int(extra.get("min_new_tokens", self.min_new_tokens))
        return max(0, min(min_new, max_new)), max_new

    def synthesize(
        self,
        text: str,
        language: str,
        voice: Voice,
        params: GenerationParams,
        awaited: bool = False,
    ) -> Iterator[np.ndarray]:
        """Open one sentence on the batch loop; its chunks arrive as the loop makes them. May be
        called from many threads at once (each reads its own sentence). `awaited`: someone waits
        for this sentence's first audio, so its prefill and first chunk go before others'
        later chunks."""
        # Validate eagerly so bad requests fail at call time, not at the first next().
        lang = language.split("-")[0]
        if language not in self._languages and lang not in self._languages and lang != "zh":
            raise ValueError(f"XTTS does not speak {language!r}; languages: {', '.join(self._languages)}")
        cond_latent, speaker_embedding = self._conditioning(voice)
        sampling = self._sampling(params)
        speed = float(params.speed) if params.speed else 1.0
        text = text.strip().lower()
        ids = self._encode(text, lang) if text else []
        if not ids:
            return iter(())
        request = SequenceRequest(
            cond_latent=cond_latent,
            text_tokens=torch.tensor([ids], dtype=torch.int32, device=self.device),
            speaker_embedding=speaker_embedding,
            sampling=sampling,
            length_scale=1.0 / max(speed, 0.05),
            first_chunk=self.first_chunk_size,
            chunk=self.stream_chunk_size,
            awaited=awaited,
        )
        return self._read(self._batch_loop().open(request))

    def _encode(self, text: str, lang: str) -> list[int]:
        try:
            ids = self.model.tokenizer.encode(text, lang=lang)
        except ImportError as exc:
            extra = {"zh": "zh", "ja": "ja", "ko": "ko"}.get(lang, "languages")
            raise EngineError(
                f"XTTS language {lang!r} needs extra packages (pip install 'coqui-tts[{extra}]'): {exc}"
            ) from exc
        limit = int(self.model.args.gpt_max_text_tokens)
        if len(ids) >= limit:
            raise ValueError(
                f"text segment too long for XTTS: {len(ids)} tokens (limit {limit - 1}); split it shorter"
            )
        return ids

    def _batch_loop(self) -> BatchLoop:
        # Made at first use, after any change of the GPT's dtype: its KV cache takes that dtype.
        if self._loop is None:
            on_cpu = not self.device.startswith("cuda")
            self._loop = BatchLoop(
                self.model,
                max_batch=self.max_batch,
                max_ahead=self.max_ahead,
                dtype=self.model.gpt.text_embedding.weight.dtype,
                device=self.device,
                # On the CPU every vocoder window costs its own time (a decode step of a few rows
                # costs what one row does): no turn vocodes more than one (see BatchLoop).
                vocoder_batch=1 if on_cpu else None,
                all_cores=on_cpu,
            )
        return self._loop

    @staticmethod
    def _read(stream: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        try:
            yield from stream
        except SequenceFailed as exc:
            raise EngineError(f"XTTS synthesis failed: {exc}") from exc
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    def graph_batch_sizes(self) -> list[int]:
        graphs = self._loop.graphs if self._loop is not None else None
        return list(graphs.buckets) if graphs is not None else []

    def close(self) -> None:
        """Stop the batch loop (sentences still in flight end with an engine failure)."""
        if self._loop is not None:
            self._loop.close()

    # ------------------------------------------------------------------ cloning

    def clone_conditioning(self, clips: Sequence[np.ndarray], sample_rate: int) -> XttsConditioning:
        """Conditioning from mono float32 reference clips (any rate; 3-30 s each works best).

        Mirrors `Xtts.get_conditioning_latents` without its file loading: each clip is resampled
        to 22050 Hz (coqui's `load_sr`), clipped to [-1, 1] and cut to `max_ref_len` seconds; the
        speaker embedding is the mean over the clips (coqui resamples to 16 kHz for the speaker
        encoder), the GPT latents come from the clips joined, first `gpt_cond_len` seconds, in
        `gpt_cond_chunk_len` s chunks.
        """
        if not clips:
            raise ValueError("at least one reference clip is needed")
        if self.device == "cpu":
            # every core, on a thread whose OpenMP team ends with it (see torch_threads)
            return torch_threads.on_own_thread(lambda: self._clone(clips, sample_rate), "xtts-clone")
        return self._clone(clips, sample_rate)

    def _clone(self, clips: Sequence[np.ndarray], sample_rate: int) -> XttsConditioning:
        import torchaudio

        load_sr = 22050
        cfg = self.config
        embeddings: list[torch.Tensor] = []
        joined: list[torch.Tensor] = []
        with torch.inference_mode():
            for clip in clips:
                wav = np.asarray(clip, dtype=np.float32).reshape(-1)
                if wav.size == 0 or not np.isfinite(wav).all():
                    raise ValueError("reference audio must be a non-empty finite mono signal")
                t = torch.from_numpy(np.ascontiguousarray(wav))[None, :]
                if sample_rate != load_sr:
                    t = torchaudio.functional.resample(t, int(sample_rate), load_sr)
                t = t.clamp(-1.0, 1.0)[:, : load_sr * int(cfg.max_ref_len)]
                if getattr(cfg, "sound_norm_refs", False):
                    peak = float(t.abs().max())
                    if peak > 0:
                        t = t / peak * 0.75
                if t.shape[-1] < math.ceil(0.33 * load_sr):
                    raise ValueError(
                        "reference audio too short for XTTS cloning (at least 0.33 s, ideally 3 s or more)"
                    )
                t = t.to(self.device)
                embeddings.append(self.model.get_speaker_embedding(t, load_sr))
                joined.append(t)
            # the conditioning encoder/perceiver always stay float32 (see load()), whatever dtype
            latent = self.model.get_gpt_cond_latents(
                torch.cat(joined, dim=-1),
                load_sr,
                length=int(cfg.gpt_cond_len),
                chunk_length=int(cfg.gpt_cond_chunk_len),
            )
            speaker_embedding = torch.stack(embeddings).mean(dim=0)
        return XttsConditioning(
            gpt_cond_latent=latent.detach().float().cpu().contiguous(),
            speaker_embedding=speaker_embedding.detach().float().cpu().contiguous(),
        )

    def conditioning_tag(self) -> str:
        cfg = self.config
        return (
            f"xtts-cond:len={cfg.gpt_cond_len}:chunk={cfg.gpt_cond_chunk_len}:"
            f"max={cfg.max_ref_len}:norm={int(bool(getattr(cfg, 'sound_norm_refs', False)))}"
        )

    def dump_conditioning(self, conditioning: object) -> bytes:
        if not isinstance(conditioning, XttsConditioning):
            raise TypeError("not XTTS conditioning")
        buffer = io.BytesIO()
        torch.save(
            {
                "gpt_cond_latent": conditioning.gpt_cond_latent,
                "speaker_embedding": conditioning.speaker_embedding,
            },
            buffer,
        )
        return buffer.getvalue()

    def load_conditioning(self, data: bytes) -> XttsConditioning:
        # weights_only: a cache file is data, never code to unpickle.
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        return XttsConditioning(
            gpt_cond_latent=loaded["gpt_cond_latent"], speaker_embedding=loaded["speaker_embedding"]
        )

    # ------------------------------------------------------------------ conditioning as vectors

    def speaker_conditioning(self, voice_id: str) -> XttsConditioning:
        speaker = self._speakers[voice_id]
        return XttsConditioning(
            gpt_cond_latent=speaker["gpt_cond_latent"].detach().float().cpu(),
            speaker_embedding=speaker["speaker_embedding"].detach().float().cpu(),
        )

    def conditioning_vectors(self, conditioning: object) -> tuple[list[float], list[list[float]]]:
        """As xtts-streaming-server hands them out: float16 values, the latents one row per
        conditioning token ([32][gpt_dim]), the embedding flat ([512])."""
        if not isinstance(conditioning, XttsConditioning):
            raise TypeError("not XTTS conditioning")
        width = conditioning.gpt_cond_latent.shape[-1]
        latent = conditioning.gpt_cond_latent.detach().cpu().reshape(-1, width).half().float()
        embedding = conditioning.speaker_embedding.detach().cpu().reshape(-1).half().float()
        return embedding.tolist(), latent.tolist()

    def conditioning_from_vectors(
        self, speaker_embedding: Sequence[float], gpt_cond_latent: Sequence[float] | Sequence[Sequence[float]]
    ) -> XttsConditioning:
        reference = next(iter(self._speakers.values()))
        embedding_size = int(reference["speaker_embedding"].numel())
        width = int(reference["gpt_cond_latent"].shape[-1])
        embedding = np.asarray(speaker_embedding, dtype=np.float32).reshape(-1)
        try:
            latent = np.asarray(gpt_cond_latent, dtype=np.float32)
        except ValueError:  # ragged rows
            raise ValueError("gpt_cond_latent's rows must all have the same length") from None
        if embedding.size != embedding_size:
            raise ValueError(
                f"speaker_embedding has {embedding.size} values; this model's has {embedding_size}"
            )
        if latent.size == 0 or latent.size % width or (latent.ndim == 2 and latent.shape[1] != width):
            raise ValueError(f"gpt_cond_latent must be rows of {width} values (this model's width)")
        if not (np.isfinite(embedding).all() and np.isfinite(latent).all()):
            raise ValueError("the vectors must hold finite numbers")
        return XttsConditioning(
            gpt_cond_latent=torch.from_numpy(latent.reshape(1, -1, width).copy()),
            speaker_embedding=torch.from_numpy(embedding.reshape(1, -1, 1).copy()),
        )

    # ------------------------------------------------------------------ warmup

    def warmup(self) -> None:
        n = max(2, self.first_chunk_size + 2)
        params = GenerationParams(extra={"min_new_tokens": n, "max_new_tokens": n})
        language = "en" if "en" in self._languages else self._languages[0]
        for _ in self.synthesize("Hello there.", language, Voice(id=self.default_voice()), params):
            pass
        if self.cuda_graphs:
            started = time.perf_counter()
            loop = self._batch_loop()
            if loop.capture_graphs():
                logger.info(
                    "XTTS decode step captured as CUDA graphs for batches of %s in %.1f s",
                    ", ".join(map(str, loop.graphs.buckets if loop.graphs else ())),
                    time.perf_counter() - started,
                )
