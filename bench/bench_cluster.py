"""Ray Serve cluster benchmark (sentiric_tts/cluster/): Piper on a local two-node Ray cluster.

Prints:
  - aggregate throughput (audio seconds per wall second, whole-file WAV requests at a fixed
    concurrency) with one engine replica and with two (one CPU each, one per node); target:
    two replicas >= 1.7 x one;
  - single-stream time to first audio (streamed WAV, idle service), p50 / p95, through the
    cluster (ingress -> engine replica) and from the single-machine service with the same
    engine settings (one engine thread, one Piper thread); target: cluster <= single + 20 ms.
Each replica runs one engine thread (TTS_FIRST_AUDIO_PRIORITY=false): with its first-audio thread
beside it, one replica alone would already use both cores of a 2-core machine.

With --load, also bench_load.py's load phase (concurrency 1, 4, 8, 16, streamed PCM) through the
cluster with two replicas, its table printed as bench_load.py prints it.

Every request speaks a distinct text, so no cache can help.
Usage: python bench/bench_cluster.py [--requests 12] [--concurrency 4] [--rounds 15]
       [--load [--load-requests-per-worker 8]]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.audio import parse_wav  # noqa: E402
from tests.support.ray_cluster import local_cluster, serve_config, serve_run  # noqa: E402
from tests.support.server import free_port, isolated_settings, running_server  # noqa: E402

LONG = (
    "Thank you for calling the support line, this is call number {n}. "
    "Your order was shipped this morning and should arrive within three business days. "
    "If you need to change the delivery address, please say change address now."
)
SHORT = "Hello, your appointment number {n} is confirmed for tomorrow morning."
# serve_config gives each replica one engine thread computing with one Piper thread; without
# first-audio threads beside it, one replica uses one core, as the single-machine service below.
ONE_CORE = {"TTS_FIRST_AUDIO_PRIORITY": "false"}


def throughput(url: str, requests: int, concurrency: int, offset: int) -> float:
    """Audio seconds per wall second over `requests` whole-file requests."""

    def one(n: int) -> float:
        response = httpx.post(f"{url}/api/tts", json={"text": LONG.format(n=n)}, timeout=300)
        response.raise_for_status()
        rate, _, samples = parse_wav(response.content)
        return len(samples) / rate

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(offset, offset + concurrency)))  # warm every path
        started = time.perf_counter()
        audio = sum(pool.map(one, range(offset + 1000, offset + 1000 + requests)))
        return audio / (time.perf_counter() - started)


def first_audio(url: str, rounds: int, offset: int) -> list[float]:
    """Seconds to the first streamed body byte past the WAV header, one request at a time."""
    times = []
    with httpx.Client(timeout=120) as client:
        for n in range(offset, offset + rounds + 2):
            started = time.perf_counter()
            received = 0
            seen = None
            with client.stream(
                "POST", f"{url}/api/tts", json={"text": SHORT.format(n=n), "stream": True}
            ) as r:
                for chunk in r.iter_raw():
                    received += len(chunk)
                    if seen is None and received > 44:
                        seen = time.perf_counter() - started
            times.append(seen or float("nan"))
    return times[2:]  # the first two warm the path


def _p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, round(q * (len(values) - 1)))]


def _deploy(cluster, data: Path, port: int, replicas: int) -> None:  # type: ignore[no-untyped-def]
    serve_run(
        cluster,
        serve_config(port, data, engine_replicas=replicas, extra_env=ONE_CORE),
        data / f"serve-{replicas}.yaml",
    )
    deadline = time.monotonic() + 300
    while True:  # ready, and as many replicas as asked have taken calls
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            seen = {
                line.split('replica="')[1].split('"')[0]
                for line in text.splitlines()
                if line.startswith("tts_cluster_engine_calls_total{")
            }
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).status_code == 200:
                if len(seen) >= replicas:
                    return
                with concurrent.futures.ThreadPoolExecutor(2) as pool:
                    list(
                        pool.map(
                            lambda n: httpx.post(
                                f"http://127.0.0.1:{port}/api/tts",
                                json={"text": f"Warm up {n}."},
                                timeout=120,
                            ),
                            range(2),
                        )
                    )
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the cluster did not become ready")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--load", action="store_true", help="also run bench_load.py through the cluster")
    parser.add_argument("--load-requests-per-worker", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        # The single-machine service first, alone on the machine.
        settings = isolated_settings(
            data / "single", engine_workers=1, piper_threads=1, piper_lone_call_threads=1
        )
        with running_server(settings) as url:
            single_ttfa = first_audio(url, args.rounds, 0)

        with local_cluster(Path(f"/tmp/ray-tts-bench-{free_port()}")) as cluster:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            (data / "cluster").mkdir()
            _deploy(cluster, data / "cluster", port, replicas=1)
            one = throughput(url, args.requests, args.concurrency, 0)
            _deploy(cluster, data / "cluster", port, replicas=2)
            two = throughput(url, args.requests, args.concurrency, 5000)
            # The single machine's texts: Piper's first piece costs more for a longer sentence
            # ("number 9001" is "nine thousand and one"), so different texts would not compare.
            cluster_ttfa = first_audio(url, args.rounds, 0)
            if args.load:
                print("bench_load.py through the cluster (2 engine replicas):", flush=True)
                load = [sys.executable, str(ROOT / "bench" / "bench_load.py"), "--url", url]
                load += ["--soak-seconds", "0", "--requests-per-worker", str(args.load_requests_per_worker)]
                subprocess.run(load, check=True)

    print(f"Piper, whole-file WAV, {args.requests} requests at concurrency {args.concurrency}:")
    print(f"  1 engine replica : {one:6.1f} audio s / wall s")
    print(f"  2 engine replicas: {two:6.1f} audio s / wall s   ratio {two / one:.2f}x (target >= 1.7x)")
    print(f"Single-stream time to first audio, {args.rounds} requests, p50 / p95 (ms):")
    print(
        f"  single machine   : {1000 * statistics.median(single_ttfa):6.1f} / {1000 * _p(single_ttfa, 0.95):6.1f}"
    )
    print(
        f"  through cluster  : {1000 * statistics.median(cluster_ttfa):6.1f} / {1000 * _p(cluster_ttfa, 0.95):6.1f}"
    )
    delta = 1000 * (statistics.median(cluster_ttfa) - statistics.median(single_ttfa))
    print(f"  cluster - single : {delta:+6.1f} ms at p50 (target <= +20 ms)")


if __name__ == "__main__":
    main()
