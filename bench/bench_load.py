"""Load and soak benchmark for the HTTP service: throughput, time to first audio, memory growth.

Starts the service on the Piper engine on 127.0.0.1 (or uses --url), then:

Phase 1 (load): at concurrency 1, 4, 8 and 16, every worker sends --requests-per-worker streamed
requests (`POST /api/tts`, `stream: true`, `output_format: pcm`; raw s16le, 22050 Hz, mono) one
after the other, or keeps sending for --level-seconds. Per level: aggregate throughput (audio
seconds produced per wall second), time to first audio (first non-empty body chunk) p50/p95/p99,
total latency p50/p95, errors (non-200 and exceptions) with 503s counted apart as refusals.
Prints a Markdown table and the ratios the targets use:
  throughput at concurrency 8 / throughput at concurrency 1 >= 0.9;
  TTFA p95 at concurrency 4 / TTFA p50 at concurrency 1 <= 2.5.

Phase 2 (soak, --soak-seconds, 0 skips): concurrency 8 for a 30 s warm-up and then for
--soak-seconds, sampling the server's resident memory (VmRSS) every 10 s. With a server started
here it runs in this process (a thread), so this process's RSS is read (client included); with
--url, pass --server-pid to read that process's RSS. Reports RSS at the start (after the warm-up)
and at the end, the growth in % (target < 5 %), requests and errors.

Every request uses a distinct text (a counter is woven in), so no cache can help; every request
has a timeout and every phase stops by itself.
Usage: python bench/bench_load.py [--url http://127.0.0.1:14030 --server-pid PID]
       [--requests-per-worker 12] [--soak-seconds 600] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.server import isolated_settings, running_server  # noqa: E402

SAMPLE_RATE = 22050
LEVELS = (1, 4, 8, 16)
SOAK_CONCURRENCY = 8
SOAK_WARMUP_S = 30.0
RSS_EVERY_S = 10.0

# Sentence templates of varied length (about 30 to 250 characters once filled in).
TEMPLATES = (
    "Call {n} is now connected, ref {i}.",
    "Hello, your appointment is confirmed for {n} o'clock tomorrow, booking {i}.",
    "Your account balance is {n} hundred and {i} dollars. Say yes to hear your recent payments.",
    "Thank you for waiting, caller {i}. An agent will be with you in about {n} minutes. "
    "Please keep your order number ready.",
    "Thank you for calling the support line, this is call number {i}. Your order was shipped "
    "{n} days ago and should arrive soon. To change the delivery address, please say change address.",
    "Good afternoon and welcome back, customer {i}. We found {n} open tickets on your account. "
    "The newest one was updated this morning by our network team, and a technician is scheduled "
    "to visit you on Friday between nine and noon.",
)
from bench_service import NUMBERS  # noqa: E402  (the same number words, one list)


class TextSource:
    """Distinct texts: a running counter picks the template and is woven into the sentence."""

    def __init__(self) -> None:
        self.counter = 0

    def next(self) -> str:
        i = self.counter
        self.counter += 1
        template = TEMPLATES[i % len(TEMPLATES)]
        return template.format(n=NUMBERS[(i // len(TEMPLATES)) % len(NUMBERS)], i=i)


@dataclass
class Outcome:
    status: int | None  # None: an exception before any status
    ttfa_s: float | None
    total_s: float
    audio_s: float
    error: str | None = None


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == 200 and o.error is None]

    @property
    def refusals(self) -> int:
        return sum(1 for o in self.outcomes if o.status == 503)

    @property
    def errors(self) -> int:
        return sum(1 for o in self.outcomes if o.status != 503 and (o.status != 200 or o.error))

    def error_kinds(self) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for o in self.outcomes:
            if o.status == 200 and o.error is None:
                continue
            key = o.error or f"HTTP {o.status}"
            kinds[key] = kinds.get(key, 0) + 1
        return kinds


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def read_rss_kib(pid: int | None) -> int:
    """VmRSS of a process (this one when pid is None), in KiB."""
    path = Path("/proc/self/status") if pid is None else Path(f"/proc/{pid}/status")
    for line in path.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in {path}")


def read_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a process (this one when pid is None)."""
    path = Path("/proc/self/stat") if pid is None else Path(f"/proc/{pid}/stat")
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_1min() -> float:
    return os.getloadavg()[0]


async def one_request(client: httpx.AsyncClient, text: str) -> Outcome:
    started = time.perf_counter()
    first: float | None = None
    size = 0
    status: int | None = None
    try:
        async with client.stream(
            "POST", "/api/tts", json={"text": text, "stream": True, "output_format": "pcm"}
        ) as r:
            status = r.status_code
            async for part in r.aiter_raw():
                if part and first is None:
                    first = time.perf_counter() - started
                size += len(part)
    except Exception as exc:  # a benchmark counts failures, it does not stop on them
        return Outcome(
            status, first, time.perf_counter() - started, size / 2 / SAMPLE_RATE, type(exc).__name__
        )
    total = time.perf_counter() - started
    error = None
    if status == 200 and size == 0:
        error = "empty body"
    elif status == 200 and size % 2:
        error = "odd byte count"
    return Outcome(status, first if status == 200 else None, total, size / 2 / SAMPLE_RATE, error)


def _client(url: str, concurrency: int, timeout_s: float) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    return httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(timeout_s), limits=limits)


async def run_level(
    url: str,
    concurrency: int,
    per_worker: int,
    seconds: float,
    texts: TextSource,
    timeout_s: float,
    pid: int | None,
) -> tuple[Tally, float, float]:
    """`concurrency` workers sending requests back to back: outcomes, wall time, server CPU seconds."""
    tally = Tally()
    async with _client(url, concurrency, timeout_s) as client:
        cpu0 = read_cpu_s(pid)
        started = time.perf_counter()
        deadline = started + seconds if seconds > 0 else None

        async def worker() -> None:
            sent = 0
            while (deadline is None and sent < per_worker) or (
                deadline is not None and time.perf_counter() < deadline
            ):
                tally.outcomes.append(await one_request(client, texts.next()))
                sent += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return tally, time.perf_counter() - started, read_cpu_s(pid) - cpu0


def level_row(concurrency: int, tally: Tally, wall: float, cpu_s: float) -> dict[str, Any]:
    ok = tally.ok
    ttfa = [o.ttfa_s for o in ok if o.ttfa_s is not None]
    totals = [o.total_s for o in ok]
    audio = sum(o.audio_s for o in ok)
    return {
        "concurrency": concurrency,
        "requests": len(tally.outcomes),
        "ok": len(ok),
        "errors": tally.errors,
        "refusals_503": tally.refusals,
        "error_kinds": tally.error_kinds(),
        "wall_s": wall,
        "audio_s": audio,
        "throughput_audio_s_per_s": audio / wall if wall > 0 else float("nan"),
        "ttfa_p50_ms": 1000 * pct(ttfa, 50),
        "ttfa_p95_ms": 1000 * pct(ttfa, 95),
        "ttfa_p99_ms": 1000 * pct(ttfa, 99),
        "server_cpu_pct": 100 * cpu_s / wall if wall > 0 else float("nan"),
        "load_1min_after": load_1min(),
        "total_p50_ms": 1000 * pct(totals, 50),
        "total_p95_ms": 1000 * pct(totals, 95),
    }


async def soak(
    url: str, seconds: float, texts: TextSource, timeout_s: float, pid: int | None
) -> dict[str, Any]:
    """Concurrency 8: a warm-up, then `seconds` of load with an RSS sample every 10 s."""
    warm = Tally()
    measured = Tally()
    samples: list[dict[str, float]] = []
    phase = {"measuring": False}
    started = time.perf_counter()
    measure_from = started + SOAK_WARMUP_S
    deadline = measure_from + seconds

    async with _client(url, SOAK_CONCURRENCY, timeout_s) as client:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                measuring = phase["measuring"]
                outcome = await one_request(client, texts.next())
                (measured if measuring else warm).outcomes.append(outcome)

        async def sampler() -> None:
            await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
            phase["measuring"] = True
            t0 = time.perf_counter()
            cpu0 = read_cpu_s(pid)
            while True:
                now = time.perf_counter()
                samples.append(
                    {
                        "t_s": now - t0,
                        "rss_kib": float(read_rss_kib(pid)),
                        "server_cpu_s": read_cpu_s(pid) - cpu0,
                        "load_1min": load_1min(),
                    }
                )
                if now >= deadline:
                    return
                await asyncio.sleep(min(RSS_EVERY_S, max(0.0, deadline - time.perf_counter())))

        await asyncio.gather(sampler(), *(worker() for _ in range(SOAK_CONCURRENCY)))
        finished = time.perf_counter()

    # In-flight requests finish after the deadline; take one last sample once the load is gone.
    rss_after_drain = read_rss_kib(pid)
    ok = measured.ok
    start_kib = samples[0]["rss_kib"]
    end_kib = samples[-1]["rss_kib"]
    ttfa = [o.ttfa_s for o in ok if o.ttfa_s is not None]
    audio = sum(o.audio_s for o in ok)
    return {
        "concurrency": SOAK_CONCURRENCY,
        "warmup_s": SOAK_WARMUP_S,
        "seconds": seconds,
        "rss_source": "this process (server thread + client)" if pid is None else f"pid {pid}",
        "warmup_requests": len(warm.outcomes),
        "warmup_errors": warm.errors + warm.refusals,
        "requests": len(measured.outcomes),
        "ok": len(ok),
        "errors": measured.errors,
        "refusals_503": measured.refusals,
        "error_kinds": measured.error_kinds(),
        "throughput_audio_s_per_s": audio / (finished - measure_from),
        "ttfa_p50_ms": 1000 * pct(ttfa, 50),
        "ttfa_p95_ms": 1000 * pct(ttfa, 95),
        "server_cpu_pct": 100 * samples[-1]["server_cpu_s"] / max(samples[-1]["t_s"], 1e-9),
        "load_1min_mean": float(np.mean([x["load_1min"] for x in samples])),
        "rss_start_mib": start_kib / 1024,
        "rss_end_mib": end_kib / 1024,
        "rss_max_mib": max(s["rss_kib"] for s in samples) / 1024,
        "rss_after_drain_mib": rss_after_drain / 1024,
        "rss_growth_pct": 100 * (end_kib - start_kib) / start_kib,
        "rss_samples": samples,
    }


async def warm_up(url: str, texts: TextSource, timeout_s: float) -> None:
    async with _client(url, 1, timeout_s) as client:
        for _ in range(2):
            await one_request(client, texts.next())


def bench(
    url: str,
    per_worker: int,
    level_seconds: float,
    soak_seconds: float,
    timeout_s: float,
    pid: int | None,
    levels: tuple[int, ...] = LEVELS,
) -> dict[str, Any]:
    texts = TextSource()
    asyncio.run(warm_up(url, texts, timeout_s))
    rows = []
    for concurrency in levels:
        tally, wall, cpu_s = asyncio.run(
            run_level(url, concurrency, per_worker, level_seconds, texts, timeout_s, pid)
        )
        rows.append(level_row(concurrency, tally, wall, cpu_s))
        print(f"  concurrency {concurrency}: {len(tally.outcomes)} requests in {wall:.1f} s", file=sys.stderr)
    by_level = {r["concurrency"]: r for r in rows}
    ratios: dict[str, float | None] = {"throughput_c8_over_c1": None, "ttfa_p95_c4_over_p50_c1": None}
    if 1 in by_level and 8 in by_level:
        c8, c1 = by_level[8]["throughput_audio_s_per_s"], by_level[1]["throughput_audio_s_per_s"]
        ratios["throughput_c8_over_c1"] = c8 / c1
    if 1 in by_level and 4 in by_level:
        ratios["ttfa_p95_c4_over_p50_c1"] = by_level[4]["ttfa_p95_ms"] / by_level[1]["ttfa_p50_ms"]
    results: dict[str, Any] = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "requests_per_worker": per_worker if level_seconds <= 0 else None,
        "level_seconds": level_seconds if level_seconds > 0 else None,
        "timeout_s": timeout_s,
        "levels": rows,
        "ratios": ratios,
        "soak": None,
    }
    if soak_seconds > 0:
        print(
            f"  soak: {SOAK_WARMUP_S:.0f} s warm-up + {soak_seconds:.0f} s at concurrency {SOAK_CONCURRENCY}",
            file=sys.stderr,
        )
        results["soak"] = asyncio.run(soak(url, soak_seconds, texts, timeout_s, pid))
    results["distinct_texts"] = texts.counter
    return results


TARGETS = {">=": lambda v, t: v >= t, "<=": lambda v, t: v <= t, "<": lambda v, t: v < t}


def _fmt_ratio(value: float | None, op: str, limit: float, unit: str = "") -> str:
    if value is None:
        return "n/a"
    met = TARGETS[op](value, limit)
    return f"{value:.2f}{unit} (target {op} {limit:g}{unit}: {'met' if met else 'MISSED'})"


def print_report(results: dict[str, Any], engine: str) -> None:
    m = results["machine"]
    print(f"Machine: {m['cpu_count']} CPUs, {m['platform']}, Python {m['python']}; {engine}")
    per = results["requests_per_worker"]
    print(
        f"Load: {per} requests per worker" if per else f"Load: {results['level_seconds']} s per level",
        f"(streamed PCM, distinct texts, timeout {results['timeout_s']:.0f} s).",
    )
    print(
        "CPU % = the server process's CPU time / wall time"
        + (" (this process: server thread and the client)" if results["server_in_process"] else "")
        + "; load = 1-minute load average after the level.\n"
    )
    print(
        "| conc | requests | ok | errors | 503 | audio s/s | TTFA p50 | TTFA p95 | TTFA p99 "
        "| total p50 | total p95 | CPU % | load |"
    )
    print("|---" * 13 + "|")
    for r in results["levels"]:
        print(
            f"| {r['concurrency']} | {r['requests']} | {r['ok']} | {r['errors']} | {r['refusals_503']} "
            f"| {r['throughput_audio_s_per_s']:.2f} | {r['ttfa_p50_ms']:.0f} ms | {r['ttfa_p95_ms']:.0f} ms "
            f"| {r['ttfa_p99_ms']:.0f} ms | {r['total_p50_ms']:.0f} ms | {r['total_p95_ms']:.0f} ms "
            f"| {r['server_cpu_pct']:.0f} | {r['load_1min_after']:.2f} |"
        )
    for r in results["levels"]:
        if r["error_kinds"]:
            print(f"- errors at concurrency {r['concurrency']}: {r['error_kinds']}")
    ratios = results["ratios"]
    print()
    print(f"- throughput c8 / c1: {_fmt_ratio(ratios['throughput_c8_over_c1'], '>=', 0.9)}")
    print(f"- TTFA p95 c4 / TTFA p50 c1: {_fmt_ratio(ratios['ttfa_p95_c4_over_p50_c1'], '<=', 2.5)}")
    s = results["soak"]
    if s:
        print(
            f"\nSoak: concurrency {s['concurrency']}, {s['warmup_s']:.0f} s warm-up + {s['seconds']:.0f} s; "
            f"RSS (VmRSS) of {s['rss_source']}, sampled every {RSS_EVERY_S:.0f} s.\n"
        )
        print(
            "| requests | ok | errors | 503 | audio s/s | TTFA p50 | TTFA p95 | CPU % | mean load "
            "| RSS start | RSS end | RSS max | growth |"
        )
        print("|---" * 13 + "|")
        print(
            f"| {s['requests']} | {s['ok']} | {s['errors']} | {s['refusals_503']} "
            f"| {s['throughput_audio_s_per_s']:.2f} | {s['ttfa_p50_ms']:.0f} ms | {s['ttfa_p95_ms']:.0f} ms "
            f"| {s['server_cpu_pct']:.0f} | {s['load_1min_mean']:.2f} "
            f"| {s['rss_start_mib']:.1f} MiB | {s['rss_end_mib']:.1f} MiB | {s['rss_max_mib']:.1f} MiB "
            f"| {s['rss_growth_pct']:+.2f} % |"
        )
        print()
        print(f"- RSS growth: {_fmt_ratio(s['rss_growth_pct'], '<', 5, ' %')}")
        print(f"- RSS after the in-flight requests drained: {s['rss_after_drain_mib']:.1f} MiB")
        if s["warmup_errors"] or s["error_kinds"]:
            print(f"- warm-up errors: {s['warmup_errors']}; soak errors: {s['error_kinds']}")
        trace = ", ".join(f"{x['rss_kib'] / 1024:.0f}" for x in s["rss_samples"])
        print(f"- RSS samples (MiB): {trace}")
        loads = ", ".join(f"{x['load_1min']:.1f}" for x in s["rss_samples"])
        print(f"- load average samples: {loads}")
    print(f"\nDistinct texts sent: {results['distinct_texts']}")


def _loopback_only(url: str) -> str:
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"--url must point at this machine's loopback (127.0.0.1), not {host!r}")
    return url.rstrip("/")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="benchmark a running service on 127.0.0.1 instead of starting one")
    parser.add_argument("--server-pid", type=int, help="with --url: the server's pid, for its RSS")
    parser.add_argument("--requests-per-worker", type=int, default=12, help="requests per worker per level")
    parser.add_argument(
        "--level-seconds", type=float, default=0.0, help="run each level this long instead (0: use counts)"
    )
    parser.add_argument(
        "--soak-seconds", type=float, default=600.0, help="soak length after warm-up; 0 skips"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="per-request timeout in seconds")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument(
        "--levels", default=",".join(map(str, LEVELS)), help="concurrency levels, comma-separated"
    )
    args = parser.parse_args()
    levels = tuple(int(level) for level in args.levels.split(","))
    if args.server_pid is not None and not args.url:
        parser.error("--server-pid goes with --url (a server started here is this process)")
    if args.url and args.soak_seconds > 0 and args.server_pid is None:
        parser.error("with --url, the soak needs --server-pid to read the server's RSS")
    run = (args.requests_per_worker, args.level_seconds, args.soak_seconds, args.timeout)
    if args.url:
        engine = "engine of the running service at " + args.url
        results = bench(_loopback_only(args.url), *run, pid=args.server_pid, levels=levels)
    else:
        engine = "Piper engine, server started in this process"
        with (
            tempfile.TemporaryDirectory() as data,
            running_server(isolated_settings(Path(data), log_level="WARNING")) as url,
        ):
            results = bench(url, *run, pid=None, levels=levels)
    results["engine"] = engine
    results["server_in_process"] = not args.url
    print_report(results, engine)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
