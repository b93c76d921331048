"""Coqui XTTS v2 engine (coqui-tts 0.28.x).

Weights are loaded through coqui-tts's own loading code (`XttsConfig.load_json`, `Xtts(config)`,
`Xtts.load_checkpoint`), so real v2 weights and the random test checkpoint take the same path.

Streaming: coqui's `Xtts.inference_stream` decodes audio every `stream_chunk_size` GPT tokens,
one size for the whole sentence. We want a small first chunk (low time-to-first-audio) and larger
later chunks (fewer HiFiGAN passes), so `synthesize` runs its own copy of that loop over the same
library pieces (`GPT.compute_embeddings`, the GPT's `generate_stream` token generator,
`Xtts.handle_chunks` for the cross-faded overlap, `hifigan_decoder`) with a chunk threshold of
`first_chunk_size` tokens for the first chunk and `stream_chunk_size` for the rest. Token limits
(`min_new_tokens` / `max_new_tokens`) are passed to each generate call, never stored on the model.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from sentiric_tts.engines.base import EngineError, GenerationParams, Voice, VoiceInfo
from sentiric_tts.engines.xtts_download import XTTS_FILES, missing_files

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

# Samples of the previous chunk kept back and cross-faded into the next (coqui's default).
OVERLAP_WAV_LEN = 1024

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
    parallel_calls = False
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
    ) -> None:
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
        use_deepspeed: bool = False,
        stream_chunk_size: int = 20,
        first_chunk_size: int = 8,
        min_new_tokens: int = 0,
        max_new_tokens: int = 0,
    ) -> XttsEngine:
        model_dir = Path(model_dir)
        missing = missing_files(model_dir)
        if missing:
            raise XttsWeightsMissing(
                f"XTTS weights folder {model_dir.resolve()} is missing: {', '.join(missing)} "
                f"(expected {', '.join(REQUIRED_FILES)})"
            )
        from TTS.tts.configs.xtts_config import XttsConfig
        from TTS.tts.models.xtts import Xtts

        resolved_device = _resolve_device(device)
        torch_dtype = _resolve_dtype(dtype, resolved_device)
        if use_deepspeed and not resolved_device.startswith("cuda"):
            logger.warning("XTTS DeepSpeed needs CUDA; running on %s without it", resolved_device)
            use_deepspeed = False
        if use_deepspeed and torch_dtype != torch.float32:
            # coqui hands DeepSpeed a half-precision copy of the GPT and lets it pick kernels;
            # casting on top of that would mix precisions.
            logger.warning("XTTS dtype %s ignored with DeepSpeed (it manages GPT precision)", dtype)
            torch_dtype = torch.float32
        if use_deepspeed:
            try:
                import deepspeed  # noqa: F401
            except ImportError as exc:
                raise EngineError("XTTS use_deepspeed is set but deepspeed is not installed") from exc

        config = XttsConfig()
        config.load_json(str(model_dir / "config.json"))
        try:
            # Xtts(config) is what the deprecated Xtts.init_from_config(config) does in 0.28.
            model = Xtts(config)
            model.load_checkpoint(
                config,
                checkpoint_dir=str(model_dir),
                vocab_path=str(model_dir / "vocab.json"),
                speaker_file_path=str(model_dir / "speakers_xtts.pth"),
                use_deepspeed=use_deepspeed,
                eval=True,
            )
        except Exception as exc:
            raise EngineError(f"could not load XTTS weights from {model_dir.resolve()}: {exc}") from exc
        # load_checkpoint(eval=True) already put the GPT and decoder in eval mode. Do NOT call
        # model.eval(): Xtts.eval() re-runs init_gpt_for_inference() without use_deepspeed.
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
        )
        logger.info(
            "XTTS loaded from %s on %s (%s, deepspeed=%s): %d languages, %d speakers",
            model_dir,
            engine.device,
            str(torch_dtype).removeprefix("torch."),
            use_deepspeed,
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

    def _generation_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        extra = params.extra or {}

        def pick(name: str, value: float | None) -> float:
            return DEFAULT_SAMPLING[name] if value is None else value

        do_sample = bool(extra.get("do_sample", 1))
        kwargs: dict[str, Any] = {
            # coqui's streaming sampler (`sample_stream`) always draws with torch.multinomial and
            # only applies the temperature/top-k/top-p warpers when do_sample is set, so greedy
            # decoding is expressed as sampling with top_k=1.
            "do_sample": True,
            "num_beams": 1,
            "num_return_sequences": 1,
            "repetition_penalty": float(pick("repetition_penalty", params.repetition_penalty)),
            "output_attentions": False,
            "output_hidden_states": True,
            "return_dict_in_generate": True,
        }
        if "length_penalty" in extra:
            # Only meaningful for beam search, which streaming never uses; passed on when asked
            # for (as coqui does), left out otherwise to keep transformers from warning about it.
            kwargs["length_penalty"] = float(extra["length_penalty"])
        if do_sample:
            kwargs["temperature"] = float(pick("temperature", params.temperature))
            kwargs["top_k"] = int(pick("top_k", params.top_k))
            kwargs["top_p"] = float(pick("top_p", params.top_p))
        else:
            kwargs.update(temperature=1.0, top_k=1, top_p=1.0)
        return kwargs

    def _token_limits(self, params: GenerationParams) -> tuple[int, int]:
        """(min_new_tokens, max_new_tokens) for one call; max is always concrete."""
        extra = params.extra or {}
        model_max = int(self.model.gpt.max_gen_mel_tokens)
        max_new = int(extra.get("max_new_tokens", self.max_new_tokens))
        max_new = model_max if max_new <= 0 else min(max_new, model_max)
        min_new = int(extra.get("min_new_tokens", self.min_new_tokens))
        return max(0, min(min_new, max_new)), max_new

    def synthesize(
        self, text: str, language: str, voice: Voice, params: GenerationParams
    ) -> Iterator[np.ndarray]:
        # Validate eagerly so bad requests fail at call time, not at the first next().
        lang = language.split("-")[0]
        if language not in self._languages and lang not in self._languages and lang != "zh":
            raise ValueError(f"XTTS does not speak {language!r}; languages: {', '.join(self._languages)}")
        cond_latent, speaker_embedding = self._conditioning(voice)
        gen_kwargs = self._generation_kwargs(params)
        min_new, max_new = self._token_limits(params)
        speed = float(params.speed) if params.speed else 1.0
        text = text.strip().lower()
        ids = self._encode(text, lang) if text else []
        return self._stream(ids, cond_latent, speaker_embedding, gen_kwargs, min_new, max_new, speed)

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

    def _stream(
        self,
        ids: list[int],
        cond_latent: torch.Tensor,
        speaker_embedding: torch.Tensor,
        gen_kwargs: dict[str, Any],
        min_new: int,
        max_new: int,
        speed: float,
    ) -> Iterator[np.ndarray]:
        from TTS.tts.layers.tortoise.autoregressive import _prepare_attention_mask_for_generation

        model = self.model
        gpt = model.gpt
        if not ids:
            return
        length_scale = 1.0 / max(speed, 0.05)
        token_gen = None
        try:
            with torch.inference_mode():
                text_tokens = torch.tensor([ids], dtype=torch.int32, device=self.device)
                # compute_embeddings stores the prefix on the shared GPT2InferenceModel; we keep
                # our own reference and re-store it before every step, so generators that are
                # interleaved (several open at once on one thread) cannot see each other's prefix.
                fake_inputs = gpt.compute_embeddings(cond_latent, text_tokens)
                prefix_emb = gpt.gpt_inference.cached_prefix_emb
                stop = torch.tensor(gpt.stop_audio_token, device=fake_inputs.device, dtype=torch.long)
                attention_mask = _prepare_attention_mask_for_generation(fake_inputs, stop, stop)
                limits: dict[str, Any] = {"max_length": fake_inputs.shape[-1] + max_new}
                if min_new > 0:
                    limits["min_new_tokens"] = min_new
                token_gen = gpt.gpt_inference.generate_stream(
                    fake_inputs,
                    bos_token_id=gpt.start_audio_token,
                    pad_token_id=gpt.stop_audio_token,
                    eos_token_id=gpt.stop_audio_token,
                    attention_mask=attention_mask,
                    **limits,
                    **gen_kwargs,
                )

            n_tokens = 0
            pending = 0
            latents: list[torch.Tensor] = []
            wav_gen_prev = None
            wav_overlap = None
            threshold = self.first_chunk_size
            is_end = False
            while not is_end:
                with torch.inference_mode():
                    gpt.gpt_inference.store_prefix_emb(prefix_emb)
                    try:
                        _token, latent = next(token_gen)
                        latents.append(latent)
                        n_tokens += 1
                        pending += 1
                    except StopIteration:
                        is_end = True
                    if not latents or not (is_end or pending >= threshold):
                        continue
                    if is_end and pending == 0 and wav_overlap is not None:
                        # Ended right on a chunk boundary (max_new_tokens hit, no stop token):
                        # re-decoding would reproduce the same audio, so the held-back overlap
                        # is exactly the missing tail.
                        audio = wav_overlap.float().clamp(-1.0, 1.0).cpu().numpy().astype(np.float32)
                        wav_overlap = None
                        if audio.size:
                            yield audio
                        break
                    gpt_latents = torch.cat(latents, dim=0)[None, :].float()
                    if length_scale != 1.0:
                        gpt_latents = F.interpolate(
                            gpt_latents.transpose(1, 2), scale_factor=length_scale, mode="linear"
                        ).transpose(1, 2)
                    wav_gen = model.hifigan_decoder(gpt_latents, g=speaker_embedding)
                    wav_chunk, wav_gen_prev, wav_overlap = model.handle_chunks(
                        wav_gen.squeeze(), wav_gen_prev, wav_overlap, OVERLAP_WAV_LEN, is_final=is_end
                    )
                    pending = 0
                    threshold = self.stream_chunk_size
                    audio = wav_chunk.float().clamp_(-1.0, 1.0).cpu().numpy().astype(np.float32, copy=True)
                if audio.size:
                    yield audio
            logger.debug("XTTS segment: %d text tokens -> %d audio tokens", len(ids), n_tokens)
        except (GeneratorExit, ValueError, KeyError):
            raise
        except Exception as exc:  # surfaced as the engine's failure type
            raise EngineError(f"XTTS synthesis failed: {exc}") from exc
        finally:
            if token_gen is not None:
                token_gen.close()

    # ------------------------------------------------------------------ cloning

    def clone_conditioning(self, clips: Sequence[np.ndarray], sample_rate: int) -> XttsConditioning:
        """Conditioning from mono float32 reference clips (any rate; 3-30 s each works best).

        Mirrors `Xtts.get_conditioning_latents` without its file loading: each clip is resampled
        to 22050 Hz (coqui's `load_sr`), clipped to [-1, 1] and cut to `max_ref_len` seconds; the
        speaker embedding is the mean over the clips (coqui resamples to 16 kHz for the speaker
        encoder), the GPT latents come from the clips joined, first `gpt_cond_len` seconds, in
        `gpt_cond_chunk_len` s chunks.
        """
        import torchaudio

        if not clips:
            raise ValueError("at least one reference clip is needed")
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

    # ------------------------------------------------------------------ warmup

    def warmup(self) -> None:
        n = max(2, self.first_chunk_size + 2)
        params = GenerationParams(extra={"min_new_tokens": n, "max_new_tokens": n})
        language = "en" if "en" in self._languages else self._languages[0]
        for _ in self.synthesize("Hello there.", language, Voice(id=self.default_voice()), params):
            pass
