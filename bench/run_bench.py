"""`make bench`: the service's speed in one report, Markdown and JSON, under bench/results/.

For each engine available (Piper always; XTTS when its weights are in the model folder,
TTS_XTTS_MODEL_DIR or ./data/models/xtts_v2, or --xtts-dir names a folder), a server is started
in this process on 127.0.0.1 and measured with the existing scripts' methods:
  - load levels (bench_load.py): at concurrency 1, 4, 8 and 16 every worker sends streamed PCM
    requests back to back; time to first audio (TTFA) p50/p95, real-time factor (request time
    / audio seconds), throughput (audio seconds per wall second), errors and 503 refusals;
  - Piper only, service vs raw engine (bench_service.py): the same texts through the HTTP
    service and through piper's PiperVoice in-process, streamed TTFA and whole-file time;
  - XTTS engine speed on the full-size architecture with random weights (bench_xtts.py),
    when CUDA is available (or --xtts-engine-speed on): TTFA and RTF per dtype, no download.
Every request carries a distinct text, so no cache helps.

The default is quick (a few minutes on 2 cores); for steadier figures:
  python bench/run_bench.py --requests-per-worker 12 --rounds 10 [--soak-seconds 600]
Writes bench/results/bench-<UTC time>.{md,json} and bench/results/latest.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from tests.support.server import isolated_settings, running_server  # noqa: E402

import bench_load  # noqa: E402
import bench_service  # noqa: E402
from sentiric_tts.engines.xtts_download import weights_present  # noqa: E402
from sentiric_tts.settings import Settings  # noqa: E402

RESULTS = BENCH / "results"


# --- The machine ---


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def _gpus() -> list[str]:
    """GPU names from nvidia-smi, without importing torch (it is not needed for Piper)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def machine() -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "gpus": _gpus(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_1min_at_start": os.getloadavg()[0],
    }


# --- One engine ---


@contextmanager
def serving(engine: str, xtts_dir: Path | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """A server on the engine, isolated from ./data and .env; yields its URL and /api/config."""
    overrides: dict[str, object] = {"engine": engine, "log_level": "WARNING"}
    if xtts_dir is not None:
        overrides["xtts_model_dir"] = xtts_dir
    with (
        tempfile.TemporaryDirectory() as data,
        running_server(isolated_settings(Path(data), **overrides)) as url,
    ):
        config = httpx.get(f"{url}/api/config", timeout=30).json()
        yield url, config


def _rescale(tally: bench_load.Tally, native_rate: int) -> None:
    """bench_load counts audio seconds at Piper's 22050 Hz; the requests ask for the engine's
    native rate (XTTS: 24000), so its byte counts are converted here, not in its (shared) logic."""
    if native_rate != bench_load.SAMPLE_RATE:
        for outcome in tally.outcomes:
            outcome.audio_s *= bench_load.SAMPLE_RATE / native_rate


def load_levels(url: str, native_rate: int, args: argparse.Namespace) -> dict[str, Any]:
    texts = bench_load.TextSource()
    asyncio.run(bench_load.warm_up(url, texts, args.timeout))
    rows = []
    for concurrency in bench_load.LEVELS:
        tally, wall, cpu_s = asyncio.run(
            bench_load.run_level(
                url, concurrency, args.requests_per_worker, args.level_seconds, texts, args.timeout, None
            )
        )
        _rescale(tally, native_rate)
        row = bench_load.level_row(concurrency, tally, wall, cpu_s)
        ok = tally.ok
        audio = sum(o.audio_s for o in ok)
        row["rtf"] = sum(o.total_s for o in ok) / audio if audio > 0 else float("nan")
        rows.append(row)
        print(
            f"  concurrency {concurrency}: {len(tally.outcomes)} requests in {wall:.1f} s, "
            f"{row['errors']} errors",
            file=sys.stderr,
        )
    soak = None
    if args.soak_seconds > 0:
        print(
            f"  soak: {bench_load.SOAK_WARMUP_S:.0f} s warm-up + {args.soak_seconds:.0f} s", file=sys.stderr
        )
        soak = asyncio.run(bench_load.soak(url, args.soak_seconds, texts, args.timeout, None))
        soak.pop("rss_samples", None)
    return {"levels": rows, "soak": soak, "distinct_texts": texts.counter}


def run_engine(engine: str, xtts_dir: Path | None, args: argparse.Namespace) -> dict[str, Any]:
    print(f"{engine}: starting the service", file=sys.stderr)
    started = time.perf_counter()
    with serving(engine, xtts_dir) as (url, config):
        result: dict[str, Any] = {
            "engine": config["engine"],
            "device": config["device"],
            "native_sample_rate": config["native_sample_rate"],
            "load": load_levels(url, config["native_sample_rate"], args),
            "raw_comparison": None,
        }
        if engine == "piper" and not args.skip_raw:
            print("  service vs raw Piper", file=sys.stderr)
            result["raw_comparison"] = bench_service.bench(url, args.rounds)
    result["minutes"] = (time.perf_counter() - started) / 60
    return result


# --- The report ---


def _ms(value: float) -> str:
    return "n/a" if value != value else f"{value:.0f} ms"  # NaN when nothing succeeded


def _num(value: float, digits: int) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"


def engine_section(result: dict[str, Any], args: argparse.Namespace) -> list[str]:
    name = result["engine"]
    lines = [
        f"## {name} ({result['device']}, {result['native_sample_rate']} Hz)",
        "",
        "### Service under load",
        "",
        "| concurrency | requests | ok | errors | 503 | TTFA p50 | TTFA p95 | RTF | audio s / wall s "
        "| request p50 | request p95 | server CPU % |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["load"]["levels"]:
        lines.append(
            f"| {r['concurrency']} | {r['requests']} | {r['ok']} | {r['errors']} | {r['refusals_503']} "
            f"| {_ms(r['ttfa_p50_ms'])} | {_ms(r['ttfa_p95_ms'])} | {_num(r['rtf'], 3)} "
            f"| {_num(r['throughput_audio_s_per_s'], 2)} | {_ms(r['total_p50_ms'])} | {_ms(r['total_p95_ms'])} "
            f"| {_num(r['server_cpu_pct'], 0)} |"
        )
    for r in result["load"]["levels"]:
        if r["error_kinds"]:
            lines.append(f"- errors at concurrency {r['concurrency']}: {r['error_kinds']}")
    by_level = {r["concurrency"]: r for r in result["load"]["levels"]}
    if 1 in by_level and 8 in by_level and by_level[1]["throughput_audio_s_per_s"] > 0:
        ratio = by_level[8]["throughput_audio_s_per_s"] / by_level[1]["throughput_audio_s_per_s"]
        lines += ["", f"Throughput at concurrency 8 / at 1: {ratio:.2f}."]
    soak = result["load"]["soak"]
    if soak:
        lines += [
            "",
            f"Soak at concurrency {soak['concurrency']}, {soak['seconds']:.0f} s after a "
            f"{soak['warmup_s']:.0f} s warm-up: {soak['requests']} requests, {soak['errors']} errors, "
            f"{soak['refusals_503']} refusals; RSS {soak['rss_start_mib']:.0f} -> {soak['rss_end_mib']:.0f} MiB "
            f"({soak['rss_growth_pct']:+.1f} %).",
        ]
    raw = result["raw_comparison"]
    if raw:
        lines += [
            "",
            "### Service vs raw engine (same texts; raw = PiperVoice in-process)",
            "",
            "| text | concurrency | TTFA p50 | TTFA p95 | whole p50 | RTF (whole) | audio s / wall s "
            "| raw first sentence | raw total | whole / raw | TTFA - raw first |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in raw["rows"]:
            lines.append(
                f"| {r['text']} | {r['concurrency']} | {_ms(r['ttfa_p50_ms'])} | {_ms(r['ttfa_p95_ms'])} "
                f"| {_ms(r['whole_p50_ms'])} | {_num(r['rtf_whole'], 3)} "
                f"| {_num(r['throughput_audio_s_per_s'], 1)} | {_ms(r['raw_first_ms'])} "
                f"| {_ms(r['raw_total_ms'])} | {_num(r['whole_vs_raw'], 2)} "
                f"| {r['ttfa_minus_raw_first_ms']:+.0f} ms |"
            )
    lines += ["", f"({result['minutes']:.1f} minutes for this engine.)", ""]
    return lines


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    m = results["machine"]
    gpus = "; ".join(m["gpus"]) if m["gpus"] else "none"
    memory = f"{m['memory_gib']:.0f} GiB" if m["memory_gib"] else "unknown"
    per = (
        f"requests per worker: {args.requests_per_worker}"
        if args.level_seconds <= 0
        else f"{args.level_seconds:.0f} s per level"
    )
    lines = [
        f"# Sentiric TTS benchmark, {results['started_utc']}",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cpu_count']} logical cores; memory {memory}",
        f"- GPU: {gpus}",
        f"- {m['platform']}, Python {m['python']}",
        f"- 1-minute load average: {m['load_1min_at_start']:.2f} at the start, "
        f"{results['load_1min_at_end']:.2f} at the end (other work on the machine skews the figures)",
        "",
        "## Method",
        "",
        "- The service runs in this process (uvicorn in a thread, isolated data folder and settings) "
        "on 127.0.0.1; the clients are httpx in the same process, so client and server share the CPU.",
        f"- Load levels (bench/bench_load.py): concurrency {', '.join(map(str, bench_load.LEVELS))}; "
        f"{per}, back to back; streamed `POST /api/tts` with `output_format: pcm` at the engine's "
        f"native rate; per-request timeout {args.timeout:.0f} s. TTFA: time to the first non-empty body "
        "chunk. RTF: request time / audio seconds (lower is faster). Throughput: audio seconds "
        "produced / wall seconds of the level. Errors: non-200 answers other than 503, exceptions, "
        "empty bodies; 503 (queue full) counted apart.",
    ]
    if any(r["raw_comparison"] for r in results["engines"]):
        lines.append(
            f"- Service vs raw (bench/bench_service.py): requests per concurrency slot: {args.rounds}; "
            "a short and a long text, concurrency 1 and 4, streamed (TTFA) and whole (RTF); the raw "
            "engine is piper's PiperVoice with the service's synthesis settings, one request at a time."
        )
    texts = (
        "- Texts: every request is distinct (a counter is woven in), so no cache helps. Load levels: "
        f"{len(bench_load.TEMPLATES)} templates of about 35 to 250 characters, in turn."
    )
    if any(r["raw_comparison"] for r in results["engines"]):
        texts += (
            f" Service vs raw: short = '{bench_service.SHORT}', long = a {len(bench_service.LONG)}-"
            "character, five-sentence call-centre answer."
        )
    lines += [
        texts,
        f"- Engines: {', '.join(r['engine'] for r in results['engines'])}."
        + (f" XTTS: {results['xtts_note']}" if results.get("xtts_note") else ""),
        "",
    ]
    for result in results["engines"]:
        lines += engine_section(result, args)
    speed = results.get("xtts_engine_speed")
    if speed:
        import bench_xtts

        lines += [
            f"## XTTS v2 engine speed ({speed['device']}, {speed['gpu']}, torch {speed['torch']})",
            "",
            "Full-size XTTS v2 architecture with random weights (bench/bench_xtts.py), loaded "
            "through the service's XttsEngine, callers speaking at once through its batch loop; "
            f"{speed['tokens']} audio tokens forced per sentence.",
            "",
            *bench_xtts.markdown(speed),
            "",
        ]
    return "\n".join(lines)


# --- Main ---


def choose_engines(args: argparse.Namespace) -> tuple[list[tuple[str, Path | None]], str]:
    """Piper always; XTTS with --xtts-dir, or when the configured model folder holds weights."""
    engines: list[tuple[str, Path | None]] = [("piper", None)]
    xtts_dir = args.xtts_dir or Settings().paths.xtts_model_dir
    if args.xtts_dir is not None and not weights_present(args.xtts_dir):
        raise SystemExit(f"--xtts-dir {args.xtts_dir}: no XTTS v2 weights there")
    if weights_present(xtts_dir):
        engines.append(("xtts", xtts_dir))
        return engines, ""
    return engines, f"not measured as a service: no weights in {xtts_dir.resolve()} (use --xtts-dir)."


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests-per-worker", type=int, default=2, help="load levels: requests per worker (default 2)"
    )
    parser.add_argument(
        "--level-seconds", type=float, default=0.0, help="load levels: run each this long instead"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="service vs raw: requests per concurrency slot (default 3)"
    )
    parser.add_argument(
        "--soak-seconds", type=float, default=0.0, help="add a soak this long (default: none)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="per-request timeout in seconds")
    parser.add_argument("--xtts-dir", type=Path, help="XTTS v2 weights to benchmark as a service")
    parser.add_argument("--piper-only", action="store_true", help="skip XTTS even where weights are present")
    parser.add_argument("--skip-raw", action="store_true", help="skip the service vs raw Piper comparison")
    parser.add_argument(
        "--xtts-engine-speed",
        choices=["auto", "on", "off"],
        default="auto",
        help="XTTS engine speed on random full-size weights (auto: when CUDA is available)",
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where the report goes")
    args = parser.parse_args()

    started = datetime.now(UTC)
    results: dict[str, Any] = {
        "started_utc": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "engines": [],
    }
    engines, results["xtts_note"] = choose_engines(args)
    if args.piper_only:
        engines = engines[:1]
        results["xtts_note"] = "skipped (--piper-only)."
    for engine, xtts_dir in engines:
        results["engines"].append(run_engine(engine, xtts_dir, args))
    if args.xtts_engine_speed == "on" or (args.xtts_engine_speed == "auto" and _cuda_available()):
        import bench_xtts

        print("XTTS engine speed (random full-size weights)", file=sys.stderr)
        speed_args = bench_xtts.options(["--rounds", str(max(2, args.rounds))])
        results["xtts_engine_speed"] = bench_xtts.engine_speed(speed_args)
    results["load_1min_at_end"] = os.getloadavg()[0]

    markdown = report(results, args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"bench-{started.strftime('%Y%m%d-%H%M%S')}"
    for name in (stem, "latest"):
        (args.out_dir / f"{name}.md").write_text(markdown + "\n")
        (args.out_dir / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(markdown)
    print(f"\nWrote {args.out_dir / stem}.md and .json (and latest.md / latest.json).", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
