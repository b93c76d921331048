"""XTTS v2 speed at full size, without downloading the weights.

Builds the FULL XTTS v2 architecture with random weights (tests/support/random_xtts.py, preset
"full"), loads it through XttsEngine (the service's loading code), and measures per dtype:
  - time to first audio (first streamed chunk of a sentence),
  - real-time factor (synthesis time / audio seconds),
for a short and a long sentence. Random weights never emit the stop token by choice, so the
number of audio tokens is forced (min == max new tokens) to what real speech of that length needs:
about 21.5 audio tokens per second of speech (24 kHz output, 1024 samples per token after the
decoder's x4 frames: 24000 / 1024 * ~0.92).

Usage:
  python bench/bench_xtts_gpu.py                     # cuda if present, all dtypes it supports
  python bench/bench_xtts_gpu.py --device cpu --dtypes float32 --rounds 1 --long-seconds 4
  python bench/bench_xtts_gpu.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

TOKENS_PER_SECOND = 21.5
SHORT = ("short", "Hello, how can I help you today?", 2.0)
LONG = (
    "long",
    "Thank you for calling, your order has shipped this morning and should arrive within three "
    "business days, so please keep your phone nearby for the courier.",
    10.0,
)


def measure(engine, text: str, tokens: int, rounds: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    import torch

    from sentiric_tts.engines.base import GenerationParams, Voice

    params = GenerationParams(extra={"min_new_tokens": tokens, "max_new_tokens": tokens})
    voice = Voice(engine.default_voice())
    firsts, totals, audio = [], [], []
    for _ in range(rounds):
        if engine.device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        first = None
        samples = 0
        for chunk in engine.synthesize(text, "en", voice, params):
            if first is None:
                first = time.perf_counter() - started
            samples += len(chunk)
        if engine.device.startswith("cuda"):
            torch.cuda.synchronize()
        totals.append(time.perf_counter() - started)
        firsts.append(first or float("nan"))
        audio.append(samples / engine.sample_rate)
    return {
        "ttfa_p50_ms": 1000 * statistics.median(firsts),
        "total_p50_ms": 1000 * statistics.median(totals),
        "audio_s": statistics.median(audio),
        "rtf": sum(totals) / sum(audio),
    }


def engine_speed(
    device: str = "auto",
    dtypes: tuple[str, ...] = ("float32", "float16", "bfloat16"),
    rounds: int = 5,
    long_seconds: float = LONG[2],
    first_chunk: int = 8,
    chunk: int = 20,
    deepspeed: bool = False,
    checkpoint: Path | None = None,
    progress: bool = True,
) -> dict[str, object]:
    """Measure every dtype the device runs; return the device, GPU, torch version and rows."""
    import torch
    from tests.support.random_xtts import build_random_xtts

    from sentiric_tts.engines.xtts import XttsEngine

    device = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none (CPU)"
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        built = checkpoint or build_random_xtts(Path(scratch), preset="full")
        for dtype in dtypes:
            if device == "cpu" and dtype != "float32":
                continue  # the engine runs CPU in float32 only
            engine = XttsEngine.load(
                built,
                device=device,
                dtype=dtype,
                use_deepspeed=deepspeed,
                first_chunk_size=first_chunk,
                stream_chunk_size=chunk,
            )
            engine.warmup()
            for name, text, seconds in (SHORT, (LONG[0], LONG[1], long_seconds)):
                tokens = round(seconds * TOKENS_PER_SECOND)
                row = {
                    "dtype": dtype,
                    "text": name,
                    "tokens": tokens,
                    **measure(engine, text, tokens, rounds),
                }
                rows.append(row)
                if progress:
                    print(
                        f"{dtype:9s} {name:5s} tokens={tokens:4d} TTFA p50={row['ttfa_p50_ms']:7.1f} ms "
                        f"total p50={row['total_p50_ms']:8.1f} ms audio={row['audio_s']:5.2f} s "
                        f"RTF={row['rtf']:.3f}",
                        flush=True,
                    )
            del engine
            if device == "cuda":
                torch.cuda.empty_cache()
    return {
        "device": device,
        "gpu": gpu,
        "torch": torch.__version__,
        "first_chunk": first_chunk,
        "chunk": chunk,
        "deepspeed": deepspeed,
        "rows": rows,
    }


def markdown_table(rows: list[dict[str, object]]) -> list[str]:
    lines = [
        "| dtype | text | audio tokens | TTFA p50 | total p50 | audio | RTF |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dtype']} | {r['text']} | {r['tokens']} | {r['ttfa_p50_ms']:.0f} ms "
            f"| {r['total_p50_ms']:.0f} ms | {r['audio_s']:.2f} s | {r['rtf']:.3f} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--dtypes", default="float32,float16,bfloat16")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--long-seconds", type=float, default=LONG[2])
    parser.add_argument("--first-chunk", type=int, default=8, help="tokens in a sentence's first chunk")
    parser.add_argument("--chunk", type=int, default=20, help="tokens in later chunks")
    parser.add_argument("--deepspeed", action="store_true")
    parser.add_argument("--checkpoint", type=Path, help="reuse a built full-size checkpoint folder")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    result = engine_speed(
        device=args.device,
        dtypes=tuple(args.dtypes.split(",")),
        rounds=args.rounds,
        long_seconds=args.long_seconds,
        first_chunk=args.first_chunk,
        chunk=args.chunk,
        deepspeed=args.deepspeed,
        checkpoint=args.checkpoint,
    )
    print(
        f"\ndevice: {result['device']}, GPU: {result['gpu']}, torch {result['torch']}, "
        f"first chunk {args.first_chunk} tokens"
    )
    print("\n".join(markdown_table(result["rows"])))  # type: ignore[arg-type]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"device": result["device"], "gpu": result["gpu"], "rows": result["rows"]}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
