"""XTTS v2 speed at full size (random weights, nothing downloaded): streaming cost, batching,
time to first audio, per dtype and with CUDA graphs on and off.

Builds the FULL XTTS v2 architecture with random weights (tests/support/random_xtts.py, preset
"full") once, loads it through XttsEngine (the service's loading code) and measures:

- stream / whole: engine time for one sentence streamed (first chunk 8 tokens, then 20) against
  the same sentence vocoded in one pass at its end (target <= 1.15 at 240 tokens);
- concurrency levels: C callers, each speaking sentences back to back through the engine's batch
  loop: time to first audio p50/p95 per sentence, single-stream RTF (C = 1) and aggregate RTF
  (wall seconds per second of audio, all streams together), GPU memory;
- with --http, the same through the HTTP service (streamed /api/tts, pcm): aggregate audio seconds
  per wall second at concurrency 1 and 4 (target: ratio >= 2.0) and TTFA (target: p95 at 4 <=
  1.5 x p50 at 1);
- on CUDA, for each dtype: whether greedy decoding of a fixed prompt set gives fp32's tokens.

Callers start spread over one sentence's time (`--start staggered`, the default: sentences then
begin as in steady traffic, not all in the same millisecond) or all at once (`--start burst`).

Random weights never emit the stop token by choice, so every sentence's audio tokens are forced
(min == max new tokens); 21.5 tokens are about one second of speech.

Usage:
  python bench/bench_xtts.py                                  # CUDA if present, every dtype, graphs on and off
  python bench/bench_xtts.py --device cpu --concurrency 1,4 --http --json out.json
  python bench/bench_xtts.py --checkpoint DIR                 # reuse a built checkpoint
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

TOKENS_PER_SECOND = 21.5
SENTENCES = (
    "Thank you for calling, your order has shipped this morning.",
    "Please keep your phone nearby for the courier.",
    "The weather tomorrow will be sunny with a light breeze.",
    "Your appointment is confirmed for Tuesday at ten.",
)
AGREEMENT_PROMPTS = (
    "Hello, how can I help you today?",
    "The quick brown fox jumps over the lazy dog.",
    "Please hold while I transfer your call.",
    "Numbers like twenty one and forty two are read aloud.",
)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def forced(tokens: int) -> Any:
    from sentiric_tts.engines.base import GenerationParams

    return GenerationParams(extra={"min_new_tokens": tokens, "max_new_tokens": tokens})


def synchronize(engine: Any) -> None:
    import torch

    if engine.device.startswith("cuda"):
        torch.cuda.synchronize()


def one_sentence(engine: Any, text: str, tokens: int) -> tuple[float, float, float]:
    """(time to first audio, total time, audio seconds) of one awaited sentence."""
    from sentiric_tts.engines.base import Voice

    synchronize(engine)
    started = time.perf_counter()
    first = None
    samples = 0
    for chunk in engine.synthesize(text, "en", Voice(engine.default_voice()), forced(tokens), awaited=True):
        if first is None:
            first = time.perf_counter() - started
        samples += chunk.size
    synchronize(engine)
    return first or float("nan"), time.perf_counter() - started, samples / engine.sample_rate


def stream_vs_whole(engine: Any, tokens: int, rounds: int) -> dict[str, float]:
    """Engine time of a sentence streamed in chunks against the same sentence vocoded once."""
    streamed_first, streamed_chunk = engine.first_chunk_size, engine.stream_chunk_size
    text = SENTENCES[0]
    times: dict[str, list[float]] = {"streamed": [], "whole": []}
    for _ in range(rounds):
        for mode in ("whole", "streamed"):
            if mode == "whole":
                engine.first_chunk_size = engine.stream_chunk_size = tokens + 1
            else:
                engine.first_chunk_size, engine.stream_chunk_size = streamed_first, streamed_chunk
            times[mode].append(one_sentence(engine, text, tokens)[1])
    engine.first_chunk_size, engine.stream_chunk_size = streamed_first, streamed_chunk
    streamed, whole = statistics.median(times["streamed"]), statistics.median(times["whole"])
    return {"tokens": tokens, "streamed_s": streamed, "whole_s": whole, "ratio": streamed / whole}


def concurrency_level(
    engine: Any, callers: int, tokens: int, sentences: int, stagger_s: float = 0.0
) -> dict[str, float]:
    """`callers` threads, each speaking `sentences` sentences back to back, caller i starting
    i x `stagger_s` after the first (0: all at once)."""
    import torch

    firsts: list[float] = []
    audio: list[float] = []
    lock = threading.Lock()

    def caller(index: int) -> None:
        time.sleep(index * stagger_s)
        for n in range(sentences):
            first, _, seconds = one_sentence(engine, SENTENCES[(index + n) % len(SENTENCES)], tokens)
            with lock:
                firsts.append(first)
                audio.append(seconds)

    if engine.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    row = {
        "concurrency": callers,
        "stagger_s": stagger_s,
        "sentences": len(audio),
        "ttfa_p50_ms": 1000 * pct(firsts, 50),
        "ttfa_p95_ms": 1000 * pct(firsts, 95),
        "audio_s": sum(audio),
        "wall_s": wall,
        "aggregate_rtf": wall / sum(audio),
    }
    if engine.device.startswith("cuda"):
        row["gpu_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return row


def stagger(args: argparse.Namespace, callers: int, sentence_s: float) -> float:
    """How far apart callers start: with --start staggered, a single caller's sentence time
    spread over them (so sentences begin as they would in steady traffic); burst: together."""
    return 0.0 if args.start == "burst" or callers == 1 else sentence_s / callers


def greedy_stream(engine: Any, text: str, tokens: int) -> Any:
    """A greedy (argmax) sequence of `tokens` audio tokens for `text`, opened in the batch loop."""
    import torch

    from sentiric_tts.engines.base import GenerationParams, Voice
    from sentiric_tts.engines.xtts_batch import SequenceRequest

    cond, speaker = engine._conditioning(Voice(engine.default_voice()))
    ids = engine._encode(text.strip().lower(), "en")
    params = GenerationParams(extra={"do_sample": 0, "min_new_tokens": tokens, "max_new_tokens": tokens})
    return engine._batch_loop().open(
        SequenceRequest(
            cond,
            torch.tensor([ids], dtype=torch.int32, device=engine.device),
            speaker,
            engine._sampling(params),
        )
    )


def greedy_tokens(engine: Any, text: str, tokens: int) -> list[int]:
    stream = greedy_stream(engine, text, tokens)
    for _ in stream:
        pass
    return stream.tokens


def greedy_tokens_together(engine: Any, texts: tuple[str, ...], tokens: int) -> dict[str, list[int]]:
    """The same prompts opened at once, so the loop decodes them as one batch."""
    streams = {text: greedy_stream(engine, text, tokens) for text in texts}
    for stream in streams.values():
        for _ in stream:
            pass
    return {text: stream.tokens for text, stream in streams.items()}


def load(checkpoint: Path, device: str, dtype: str, graphs: bool, max_batch: int) -> Any:
    from sentiric_tts.engines.xtts import XttsEngine

    engine = XttsEngine.load(checkpoint, device=device, dtype=dtype, cuda_graphs=graphs, max_batch=max_batch)
    engine.warmup()
    return engine


def engine_rows(args: argparse.Namespace, checkpoint: Path, device: str) -> list[dict[str, Any]]:
    import torch

    rows = []
    greedy: dict[tuple[str, bool], dict[str, list[int]]] = {}
    for dtype in args.dtypes:
        if device == "cpu" and dtype != "float32":
            continue  # the engine runs the CPU in float32 only
        for graphs in args.graphs if device.startswith("cuda") else [False]:
            engine = load(checkpoint, device, dtype, graphs, max(args.concurrency))
            label = f"{dtype}, graphs {'on' if engine.graph_batch_sizes() else 'off'}"
            row: dict[str, Any] = {"dtype": dtype, "graphs": bool(engine.graph_batch_sizes()), "levels": []}
            if args.stream_vs_whole:
                row["stream_vs_whole"] = stream_vs_whole(engine, args.stream_vs_whole, args.rounds)
                r = row["stream_vs_whole"]
                print(
                    f"{label}: {r['tokens']} tokens streamed {r['streamed_s']:.2f} s, whole "
                    f"{r['whole_s']:.2f} s, ratio {r['ratio']:.3f}",
                    flush=True,
                )
            sentence_s = 0.0
            for callers in args.concurrency:
                level = concurrency_level(
                    engine, callers, args.tokens, args.rounds, stagger(args, callers, sentence_s)
                )
                if callers == 1:
                    sentence_s = level["wall_s"] / level["sentences"]
                row["levels"].append(level)
                print(
                    f"{label}: c{callers:<3d} TTFA p50 {level['ttfa_p50_ms']:7.1f} ms p95 "
                    f"{level['ttfa_p95_ms']:7.1f} ms, aggregate RTF {level['aggregate_rtf']:.4f}"
                    + (f", GPU peak {level['gpu_peak_gib']:.1f} GiB" if "gpu_peak_gib" in level else ""),
                    flush=True,
                )
            solo = {text: greedy_tokens(engine, text, 40) for text in AGREEMENT_PROMPTS}
            together = greedy_tokens_together(engine, AGREEMENT_PROMPTS, 40)
            same = sum(together[t] == solo[t] for t in AGREEMENT_PROMPTS)
            row["greedy_batched_as_alone"] = f"{same}/{len(AGREEMENT_PROMPTS)}"
            print(
                f"{label}: greedy tokens decoded together equal those decoded alone on {same}/{len(AGREEMENT_PROMPTS)} prompts"
            )
            greedy[(dtype, row["graphs"])] = solo
            agreement(row, greedy)
            engine.close()
            del engine
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            rows.append(row)
    return rows


def agreement(row: dict[str, Any], greedy: dict[tuple[str, bool], dict[str, list[int]]]) -> None:
    """A configuration's greedy tokens against float32's without graphs (the reference) and
    against its own dtype's without graphs (graph replay must change nothing). `engine_rows` runs
    float32 first and eager before graphs, so both are known when a row is compared."""
    tokens = greedy[(row["dtype"], row["graphs"])]
    label = f"{row['dtype']}, graphs {'on' if row['graphs'] else 'off'}"
    comparisons = {
        "greedy_graphs_as_eager": (
            "eager steps'",
            greedy.get((row["dtype"], False)) if row["graphs"] else None,
        ),
        "greedy_tokens_as_float32": (
            "float32 eager's",
            greedy.get(("float32", False)) if (row["dtype"], row["graphs"]) != ("float32", False) else None,
        ),
    }
    for key, (name, reference) in comparisons.items():
        if reference is not None:
            same = sum(tokens[t] == reference[t] for t in AGREEMENT_PROMPTS)
            row[key] = f"{same}/{len(AGREEMENT_PROMPTS)}"
            print(f"{label}: greedy tokens equal to {name} on {same}/{len(AGREEMENT_PROMPTS)} prompts")


async def _http_level(
    url: str, callers: int, tokens: int, sentences: int, stagger_s: float = 0.0
) -> dict[str, float]:
    import httpx

    firsts: list[float] = []
    audio: list[float] = []

    async def caller(client: httpx.AsyncClient, index: int) -> None:
        await asyncio.sleep(index * stagger_s)
        for n in range(sentences):
            body = {"text": SENTENCES[(index + n) % len(SENTENCES)], "stream": True, "output_format": "pcm"}
            started = time.perf_counter()
            first = None
            size = 0
            async with client.stream("POST", "/api/tts", json=body) as response:
                response.raise_for_status()
                async for part in response.aiter_bytes():
                    if part and first is None:
                        first = time.perf_counter() - started
                    size += len(part)
            firsts.append(first or float("nan"))
            audio.append(size / 2 / 24000)

    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        started = time.perf_counter()
        await asyncio.gather(*(caller(client, i) for i in range(callers)))
        wall = time.perf_counter() - started
    return {
        "concurrency": callers,
        "stagger_s": stagger_s,
        "wall_s_per_sentence": wall / sentences if callers == 1 else float("nan"),
        "ttfa_p50_ms": 1000 * pct(firsts, 50),
        "ttfa_p95_ms": 1000 * pct(firsts, 95),
        "audio_s_per_wall_s": sum(audio) / wall,
    }


def http_rows(args: argparse.Namespace, checkpoint: Path, device: str) -> dict[str, Any]:
    """The same through the service, served as in production: `python -m sentiric_tts serve` in
    a process of its own (a server in this process would share its interpreter lock with the
    load client)."""
    from tests.support.server import serve_in_subprocess

    with tempfile.TemporaryDirectory() as data:
        process, url = serve_in_subprocess(
            Path(data),
            startup_timeout_s=1800,
            TTS_ENGINE="xtts",
            TTS_XTTS_MODEL_DIR=str(checkpoint),
            TTS_XTTS_DEVICE=device,
            TTS_XTTS_DTYPE=args.http_dtype,
            TTS_XTTS_MIN_NEW_TOKENS=str(args.tokens),
            TTS_XTTS_MAX_NEW_TOKENS=str(args.tokens),
            TTS_XTTS_MAX_BATCH=str(max(args.concurrency)),
            TTS_LOG_LEVEL="WARNING",
            TTS_GRADIO_ENABLED="false",
            TTS_GRPC_ENABLED="false",
        )
        try:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the service did not start:\n{process.stdout.read() if process.stdout else ''}"
                )
            levels = []
            sentence_s = 0.0
            for callers in sorted({1, *args.concurrency}):
                level = asyncio.run(
                    _http_level(url, callers, args.tokens, args.rounds, stagger(args, callers, sentence_s))
                )
                if callers == 1:
                    sentence_s = level["wall_s_per_sentence"]
                levels.append(level)
                print(
                    f"HTTP c{callers}: TTFA p50 {level['ttfa_p50_ms']:.0f} ms p95 {level['ttfa_p95_ms']:.0f} ms, "
                    f"{level['audio_s_per_wall_s']:.3f} audio s per wall s",
                    flush=True,
                )
        finally:
            process.terminate()
            process.wait(60)
    by = {level["concurrency"]: level for level in levels}
    result: dict[str, Any] = {"levels": levels}
    if 1 in by and 4 in by:
        result["throughput_c4_over_c1"] = by[4]["audio_s_per_wall_s"] / by[1]["audio_s_per_wall_s"]
        result["ttfa_p95_c4_over_p50_c1"] = by[4]["ttfa_p95_ms"] / by[1]["ttfa_p50_ms"]
        print(
            f"HTTP: throughput c4/c1 {result['throughput_c4_over_c1']:.2f} (target >= 2.0), "
            f"TTFA p95 c4 / p50 c1 {result['ttfa_p95_c4_over_p50_c1']:.2f} (target <= 1.5)"
        )
    return result


def markdown(result: dict[str, Any]) -> list[str]:
    lines = [
        "| dtype | CUDA graphs | concurrency | TTFA p50 | TTFA p95 | aggregate RTF | GPU peak |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["engine"]:
        for level in row["levels"]:
            gpu = f"{level['gpu_peak_gib']:.1f} GiB" if "gpu_peak_gib" in level else "-"
            lines.append(
                f"| {row['dtype']} | {'on' if row['graphs'] else 'off'} | {level['concurrency']} "
                f"| {level['ttfa_p50_ms']:.0f} ms | {level['ttfa_p95_ms']:.0f} ms "
                f"| {level['aggregate_rtf']:.4f} | {gpu} |"
            )
    return lines


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--dtypes", default="float32,float16,bfloat16")
    parser.add_argument(
        "--http-dtype",
        default="float32",
        choices=["float32", "float16", "bfloat16"],
        help="the HTTP service's",
    )
    parser.add_argument("--graphs", default="on,off", help="CUDA graphs: on, off or both (CUDA only)")
    parser.add_argument("--concurrency", default="", help="levels (default: 1,4,16,32 on CUDA, 1,4 on CPU)")
    parser.add_argument(
        "--tokens", type=int, default=0, help="audio tokens per sentence (default: 5 s of speech)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="sentences per caller per level")
    parser.add_argument("--stream-vs-whole", type=int, default=240, help="tokens of that sentence (0: skip)")
    parser.add_argument("--http", action="store_true", help="also measure through the HTTP service")
    parser.add_argument("--http-only", action="store_true", help="measure through the HTTP service only")
    parser.add_argument(
        "--start",
        default="staggered",
        choices=["staggered", "burst"],
        help="callers start spread over one sentence's time (steady traffic) or all at once",
    )
    parser.add_argument("--preset", default="full", choices=["full", "tiny"])
    parser.add_argument("--checkpoint", type=Path, help="a built checkpoint folder to reuse")
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


def engine_speed(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement `args` asks for (see `options`), as one JSON-ready result."""
    import torch
    from tests.support.random_xtts import build_random_xtts

    from sentiric_tts.engines import torch_threads

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    dtypes = args.dtypes.split(",") if isinstance(args.dtypes, str) else args.dtypes
    graphs = args.graphs.split(",") if isinstance(args.graphs, str) else args.graphs
    # float32 first and eager before graphs: the references of `agreement` come first.
    args.dtypes = sorted(dtypes, key=lambda name: name != "float32")
    args.graphs = sorted(g is True or g == "on" for g in graphs)
    default_levels = "1,4,16,32" if device == "cuda" else "1,4"
    levels = args.concurrency or default_levels
    args.concurrency = [int(c) for c in levels.split(",")] if isinstance(levels, str) else levels
    args.tokens = args.tokens or round(5 * TOKENS_PER_SECOND)
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none (CPU)"
    print(f"device {device}, GPU {gpu}, torch {torch.__version__}", flush=True)
    if device == "cpu":
        # As in the service: the batch loop's thread is the one that runs torch with every core,
        # so building the checkpoint leaves no OpenMP team behind on this thread.
        torch_threads.one_thread_elsewhere()
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        checkpoint = args.checkpoint or torch_threads.on_own_thread(
            lambda: build_random_xtts(Path(scratch), preset=args.preset), "build-checkpoint"
        )
        print(f"checkpoint ready in {time.perf_counter() - started:.0f} s", flush=True)
        result: dict[str, Any] = {
            "device": device,
            "gpu": gpu,
            "torch": torch.__version__,
            "preset": args.preset,
            "tokens": args.tokens,
            "start": args.start,
            "engine": [] if args.http_only else engine_rows(args, checkpoint, device),
        }
        if args.http or args.http_only:
            result["http"] = http_rows(args, checkpoint, device)
    return result


def main() -> int:
    args = options()
    result = engine_speed(args)
    print()
    print("\n".join(markdown(result)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
