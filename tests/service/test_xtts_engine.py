"""XttsEngine against a tiny random-weight XTTS v2 checkpoint (built locally, nothing downloaded)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("TTS.tts.models.xtts", reason="coqui-tts is not installed")

from sentiric_tts.engines.base import Engine, EngineError, GenerationParams, Voice
from sentiric_tts.engines.xtts import (
    DEFAULT_SAMPLING,
    XttsConditioning,
    XttsEngine,
    XttsWeightsMissing,
)
from sentiric_tts.engines.xtts_download import weights_present
from tests.support.random_xtts import SPEAKER_NAMES, XTTS_LANGUAGES

FIRST = 8
STREAM = 20
N_TOKENS = 30  # forced by min_new_tokens == max_new_tokens at engine level


def greedy(n: int, **extra: float) -> GenerationParams:
    return GenerationParams(extra={"do_sample": 0, "min_new_tokens": n, "max_new_tokens": n, **extra})


def decoded_len(n_tokens: int) -> int:
    """Samples HiFiGAN produces for n GPT latents (x4 frames, 22050->24000 Hz, x256 upsampling)."""
    return math.floor(n_tokens * 4 * 24000 / 22050) * 256


@pytest.fixture(scope="session")
def engine(xtts_dir: Path) -> Iterator[XttsEngine]:
    eng = XttsEngine.load(
        xtts_dir,
        device="cpu",
        stream_chunk_size=STREAM,
        first_chunk_size=FIRST,
        min_new_tokens=N_TOKENS,
        max_new_tokens=N_TOKENS,
    )
    yield eng
    eng.close()


def collect(engine: XttsEngine, text: str, voice: str | Voice, params: GenerationParams) -> list[np.ndarray]:
    v = voice if isinstance(voice, Voice) else Voice(id=voice)
    return list(engine.synthesize(text, "en", v, params))


def check_audio(chunks: list[np.ndarray]) -> np.ndarray:
    assert chunks
    for c in chunks:
        assert isinstance(c, np.ndarray)
        assert c.dtype == np.float32 and c.ndim == 1 and c.size > 0
        assert np.isfinite(c).all()
        assert np.abs(c).max() <= 1.0
    return np.concatenate(chunks)


def test_load_and_listings(engine: XttsEngine, xtts_dir: Path) -> None:
    assert weights_present(xtts_dir)
    assert isinstance(engine, Engine)
    assert engine.name == "xtts" and engine.supports_cloning
    assert engine.sample_rate == 24000 and engine.device == "cpu"
    assert engine.languages() == list(XTTS_LANGUAGES)
    voices = engine.voices()
    assert [v.id for v in voices] == list(SPEAKER_NAMES)
    assert all(v.kind == "studio" and v.languages == tuple(XTTS_LANGUAGES) for v in voices)
    assert engine.default_voice() == "Claribel Dervla"
    assert engine.max_segment_chars("en") == 250
    assert engine.max_segment_chars("zh-cn") == 82
    assert engine.max_segment_chars("ja") == 71
    assert engine.max_segment_chars("xx") == 250
    fp = engine.fingerprint()
    assert len(fp) == 16 and fp == engine.fingerprint()
    assert set(DEFAULT_SAMPLING) >= {"temperature", "top_k", "top_p", "repetition_penalty"}


def test_synthesis_builtin_speaker(engine: XttsEngine) -> None:
    audio = check_audio(collect(engine, "Hello world, this is a test.", "Ana Florence", GenerationParams()))
    assert audio.size == decoded_len(N_TOKENS)
    assert np.abs(audio).max() > 0


def test_streaming_first_chunk_is_smaller(engine: XttsEngine) -> None:
    chunks = collect(engine, "Streaming in several chunks.", engine.default_voice(), greedy(N_TOKENS))
    sizes = [c.size for c in chunks]
    # tokens per chunk: 8, 20, 2; each chunk's audio is its settled frames (the vocoder holds the
    # last MARGIN_FRAMES back for the next chunk's context), all of it exactly once
    assert len(sizes) == 3
    assert sizes[0] < sizes[1]
    assert all(size % 256 == 0 for size in sizes)
    assert sum(sizes) == decoded_len(N_TOKENS)

    # ending exactly on a chunk boundary (8 + 20): the last chunk carries the held-back tail
    boundary = [c.size for c in collect(engine, "Boundary.", "Ana Florence", greedy(FIRST + STREAM))]
    assert len(boundary) == 2 and boundary[0] == sizes[0]
    assert sum(boundary) == decoded_len(FIRST + STREAM)

    # a longer forced generation: 8 + 20 + 20 + 12 tokens
    sizes = [c.size for c in collect(engine, "More chunks.", "Ana Florence", greedy(60))]
    assert len(sizes) == 4 and sum(sizes) == decoded_len(60)
    assert sizes[0] < sizes[1] and abs(sizes[1] - sizes[2]) <= 256


def test_params_do_not_leak_between_calls(engine: XttsEngine) -> None:
    gen_config = engine.model.gpt.gpt_inference.generation_config.to_dict()
    reference = np.concatenate(collect(engine, "Isolated call.", "Claribel Dervla", greedy(12)))

    # interleave with a different request (other text, speaker, sampling and limits)
    a = engine.synthesize("Isolated call.", "en", Voice("Claribel Dervla"), greedy(12))
    b = engine.synthesize(
        "A much longer and different sentence for the other request.",
        "en",
        Voice("Tiny Speaker 3"),
        GenerationParams(
            temperature=1.3, top_k=5, top_p=0.5, repetition_penalty=1.1, extra={"max_new_tokens": 25}
        ),
    )
    out_a = [next(a)]
    out_b = [next(b)]
    out_a += list(a)
    out_b += list(b)
    # the same tokens; samples to float rounding (a batch of two computes its rows in one GEMM)
    np.testing.assert_allclose(np.concatenate(out_a), reference, rtol=0, atol=1e-6)
    assert sum(c.size for c in out_b) == decoded_len(25)

    # engine-level limits still apply to the next plain call
    again = np.concatenate(collect(engine, "Isolated call.", "Claribel Dervla", greedy(12)))
    np.testing.assert_allclose(again, reference, rtol=0, atol=1e-6)
    assert engine.model.gpt.gpt_inference.generation_config.to_dict() == gen_config
    assert sum(c.size for c in collect(engine, "Plain.", "Ana Florence", GenerationParams())) == decoded_len(
        N_TOKENS
    )


def test_speed_changes_length(engine: XttsEngine) -> None:
    normal = sum(c.size for c in collect(engine, "Speed.", "Ana Florence", greedy(16)))
    fast_params = GenerationParams(speed=2.0, extra=greedy(16).extra)
    fast = sum(c.size for c in collect(engine, "Speed.", "Ana Florence", fast_params))
    assert normal == decoded_len(16)
    assert fast < normal * 0.6


def test_close_generator_early(engine: XttsEngine) -> None:
    reference = np.concatenate(collect(engine, "After close.", "Claribel Dervla", greedy(10)))
    gen = engine.synthesize("This one is abandoned halfway.", "en", Voice("Ana Florence"), greedy(60))
    first = next(gen)
    assert first.size > 0
    gen.close()
    # never started at all
    engine.synthesize("Never consumed.", "en", Voice("Ana Florence"), greedy(60)).close()
    after = np.concatenate(collect(engine, "After close.", "Claribel Dervla", greedy(10)))
    np.testing.assert_allclose(after, reference, rtol=0, atol=1e-6)


def test_clone_conditioning(engine: XttsEngine) -> None:
    sr = 16000
    t = np.arange(3 * sr) / sr
    rng = np.random.default_rng(0)
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    tone = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2)
    signal = (0.3 * tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32)

    cond = engine.clone_conditioning([signal], sr)
    assert isinstance(cond, XttsConditioning)
    dim = engine.model.gpt.model_dim
    assert tuple(cond.gpt_cond_latent.shape) == (1, 32, dim)
    assert tuple(cond.speaker_embedding.shape) == (1, 512, 1)
    assert cond.gpt_cond_latent.device.type == "cpu"
    assert bool(cond.gpt_cond_latent.isfinite().all()) and bool(cond.speaker_embedding.isfinite().all())

    audio = check_audio(collect(engine, "Cloned voice.", Voice("my-clone", cond), greedy(12)))
    assert audio.size == decoded_len(12)
    builtin = np.concatenate(collect(engine, "Cloned voice.", "Claribel Dervla", greedy(12)))
    assert not np.array_equal(audio, builtin)

    # same audio at another rate resamples to (nearly) the same conditioning
    cond44 = engine.clone_conditioning(
        [np.interp(np.arange(3 * 44100) / 44100, t, signal).astype(np.float32)], 44100
    )
    assert tuple(cond44.gpt_cond_latent.shape) == (1, 32, dim)

    with pytest.raises(ValueError, match="too short"):
        engine.clone_conditioning([signal[: sr // 10]], sr)


def test_several_clips_and_cache_round_trip(engine: XttsEngine) -> None:
    sr = 22050
    t = np.arange(2 * sr) / sr
    low = (0.3 * np.sin(2 * np.pi * 120 * t)).astype(np.float32)
    high = (0.3 * np.sin(2 * np.pi * 240 * t)).astype(np.float32)
    both = engine.clone_conditioning([low, high], sr)
    only_low = engine.clone_conditioning([low], sr)
    assert not np.allclose(both.speaker_embedding.numpy(), only_low.speaker_embedding.numpy())
    restored = engine.load_conditioning(engine.dump_conditioning(both))
    assert np.array_equal(restored.gpt_cond_latent.numpy(), both.gpt_cond_latent.numpy())
    assert np.array_equal(restored.speaker_embedding.numpy(), both.speaker_embedding.numpy())
    assert "gpt_cond_len" not in engine.conditioning_tag() and engine.conditioning_tag().startswith(
        "xtts-cond"
    )
    with pytest.raises(ValueError, match="at least one"):
        engine.clone_conditioning([], sr)


def test_unknown_speaker_and_language(engine: XttsEngine) -> None:
    with pytest.raises(KeyError, match="Nobody"):
        engine.synthesize("Hi.", "en", Voice("Nobody"), GenerationParams())
    with pytest.raises(ValueError, match="xx"):
        engine.synthesize("Hi.", "xx", Voice("Ana Florence"), GenerationParams())


def test_other_language_and_warmup(engine: XttsEngine) -> None:
    check_audio(list(engine.synthesize("Bonjour, ça va ?", "fr", Voice("Ana Florence"), greedy(9))))
    engine.warmup()


def test_missing_weights(tmp_path: Path, xtts_dir: Path) -> None:
    assert not weights_present(tmp_path)
    (tmp_path / "config.json").write_bytes((xtts_dir / "config.json").read_bytes())
    (tmp_path / "vocab.json").write_bytes((xtts_dir / "vocab.json").read_bytes())
    assert not weights_present(tmp_path)
    with pytest.raises(XttsWeightsMissing) as info:
        XttsEngine.load(tmp_path, device="cpu")
    message = str(info.value)
    assert str(tmp_path.resolve()) in message
    assert "model.pth" in message and "speakers_xtts.pth" in message
    assert "vocab.json, " not in message.split("missing:")[1].split("(")[0]
    assert isinstance(info.value, FileNotFoundError)


def test_dtype_on_cpu_falls_back_to_float32(xtts_dir: Path) -> None:
    import torch

    eng = XttsEngine.load(xtts_dir, device="cpu", dtype="float16", min_new_tokens=9, max_new_tokens=9)
    assert eng.dtype == torch.float32
    assert eng.model.gpt.gpt.h[0].attn.c_attn.weight.dtype == torch.float32


def test_reduced_precision_gpt_path(xtts_dir: Path) -> None:
    """The CUDA float16/bfloat16 code path, exercised on CPU with bfloat16 GPT weights."""
    import torch

    from sentiric_tts.engines.xtts import _cast_gpt_for_generation

    eng = XttsEngine.load(xtts_dir, device="cpu", min_new_tokens=10, max_new_tokens=10)
    _cast_gpt_for_generation(eng.model.gpt, torch.bfloat16)
    eng.dtype = torch.bfloat16
    assert eng.model.gpt.gpt.h[0].attn.c_attn.weight.dtype == torch.bfloat16
    sr = 16000
    t = np.arange(2 * sr) / sr
    cond = eng.clone_conditioning([(0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)], sr)
    assert cond.gpt_cond_latent.dtype == torch.float32
    for voice in (Voice("clone", cond), Voice("Ana Florence")):
        audio = check_audio(list(eng.synthesize("Half precision.", "en", voice, GenerationParams())))
        assert audio.size == decoded_len(10)


def test_too_long_segment_and_corrupt_weights(engine: XttsEngine, xtts_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too long"):
        engine.synthesize("word " * 100, "en", Voice("Ana Florence"), GenerationParams())
    for name in ("config.json", "vocab.json", "speakers_xtts.pth"):
        (tmp_path / name).write_bytes((xtts_dir / name).read_bytes())
    (tmp_path / "model.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(EngineError, match=str(tmp_path.resolve())):
        XttsEngine.load(tmp_path, device="cpu")
