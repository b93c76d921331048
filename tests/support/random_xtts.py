"""Build an XTTS v2-shaped checkpoint with random weights, for tests and benchmarks.

Nothing is downloaded: the model is built by coqui-tts's own `Xtts` class from a config, its
randomly initialised state dict is saved the way real checkpoints are (`{"model": state_dict}`),
and `XttsEngine.load` reads it back through exactly the code path it uses for real v2 weights.

Presets:
- "tiny": a 2-layer, 128-channel GPT. The HiFiGAN decoder and the speaker encoder keep their
  real sizes because coqui-tts hard-codes them (only `decoder_input_dim` and `d_vector_dim` are
  configurable), so decoding costs as much as with real weights; keep generated token counts small.
- "full": the real XTTS v2 architecture (30 layers, 1024 channels, 16 heads, ~1.8 GB on disk).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch

XTTS_LANGUAGES = (
    "en", "es", "fr", "de", "it", "pt", "pl", "tr", "ru", "nl",
    "cs", "ar", "zh-cn", "hu", "ko", "ja", "hi",
)  # fmt: skip

SPEAKER_NAMES = ("Claribel Dervla", "Ana Florence", "Tiny Speaker 3")

# Ordinary characters the multilingual cleaners can leave in lowercased text.
_CHARS = (
    "abcdefghijklmnopqrstuvwxyz"
    "0123456789"
    "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿßœ"
    "ąćęłńśźżčďěňřšťůžğışőű"
    "абвгдежзийклмнопрстуфхцчшщъыьэюяё"
    ".,!?;:'\"-()&%$€£@/+=*¿¡«»"
    "\u2013\u2014\u2026\u2018\u2019\u201c\u201d\u201e"  # dashes, ellipsis, curly quotes
    + "".join(chr(c) for c in range(0x0621, 0x064B))  # Arabic letters
    + "".join(chr(c) for c in range(0x0900, 0x0980))  # Devanagari
)

_ARCH: dict[str, dict[str, int]] = {
    "tiny": {"gpt_layers": 2, "gpt_n_model_channels": 128, "gpt_n_heads": 4, "decoder_input_dim": 128},
    "full": {"gpt_layers": 30, "gpt_n_model_channels": 1024, "gpt_n_heads": 16, "decoder_input_dim": 1024},
}
_VOCAB_SIZE = {"tiny": 0, "full": 6681}  # XTTS v2's vocab.json has 6681 tokens


def _speaker_names(n: int) -> list[str]:
    names = list(SPEAKER_NAMES[:n])
    names += [f"Tiny Speaker {i + 1}" for i in range(len(names), n)]
    return names


def build_vocab(path: Path, min_size: int = 0) -> int:
    """Write a character-level BPE vocab.json in the XTTS layout; return the vocab size.

    `min_size` pads the vocab with never-produced tokens, so the "full" preset's text embedding
    and text head have the real v2 shapes (6681 text tokens).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers

    specials = ["[STOP]", "[UNK]", "[SPACE]", "[START]"] + [f"[{lang}]" for lang in XTTS_LANGUAGES]
    vocab: dict[str, int] = {}
    for token in specials + list(dict.fromkeys(_CHARS)):
        vocab.setdefault(token, len(vocab))
    merges = [("t", "h"), ("th", "e"), ("i", "n"), ("e", "r"), ("a", "n")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    while len(vocab) < min_size:
        vocab[f"<unused{len(vocab)}>"] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(specials)
    tokenizer.save(str(path))
    return len(vocab)


def build_random_xtts(
    out_dir: Path,
    preset: Literal["tiny", "full"] = "tiny",
    n_speakers: int = 3,
    seed: int = 0,
) -> Path:
    """Write config.json, model.pth, vocab.json and speakers_xtts.pth into `out_dir`; return it."""
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import Xtts

    if preset not in _ARCH:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(_ARCH)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)

    vocab_size = build_vocab(out_dir / "vocab.json", _VOCAB_SIZE[preset])

    config = XttsConfig()
    args = config.model_args
    for key, value in _ARCH[preset].items():
        setattr(args, key, value)
    # The XTTS v2 values (its config.json), which differ from the XttsArgs dataclass defaults.
    args.gpt_number_text_tokens = vocab_size
    args.gpt_num_audio_tokens = 1026
    args.gpt_start_audio_token = 1024
    args.gpt_stop_audio_token = 1025
    args.gpt_use_perceiver_resampler = True
    args.gpt_max_audio_tokens = 605
    args.gpt_max_text_tokens = 402
    args.gpt_max_prompt_tokens = 70
    args.d_vector_dim = 512
    config.languages = list(XTTS_LANGUAGES)
    config.temperature = 0.75
    config.length_penalty = 1.0
    config.repetition_penalty = 5.0
    config.top_k = 50
    config.top_p = 0.85
    config.gpt_cond_len = 30
    config.gpt_cond_chunk_len = 4
    config.max_ref_len = 30
    (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2), encoding="utf-8")

    model = Xtts(config)
    with torch.no_grad():
        if preset == "tiny":
            # Smaller random GPT weights keep the tiny model's sampling from saturating.
            for name, param in model.gpt.named_parameters():
                if param.ndim >= 2 and "embedding" not in name:
                    param.mul_(0.5)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save({"model": state}, out_dir / "model.pth")

    dim = args.gpt_n_model_channels
    speakers = {
        name: {
            "gpt_cond_latent": torch.randn(1, 32, dim) * 0.5,
            "speaker_embedding": torch.nn.functional.normalize(torch.randn(1, 512), dim=1).unsqueeze(-1),
        }
        for name in _speaker_names(n_speakers)
    }
    torch.save(speakers, out_dir / "speakers_xtts.pth")
    return out_dir
