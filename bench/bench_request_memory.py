"""Peak resident memory of one whole-file request: the hostile SSML of issue 16, and the largest
request the limits let through.

Each case runs in a fresh process on the real Piper engine (Runtime.build + start, then
pipeline.synthesize, the whole-file path every door shares) and reads VmHWM from /proc before and
after the request. Prints a Markdown table.

    .venv/bin/python bench/bench_request_memory.py
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    "600 x 10 s breaks (20 KB SSML)": ("<speak>a" + '<break time="10s"/>' * 600 + "b</speak>", 48000),
    "largest allowed: 59 x 10 s breaks, 48 kHz WAV": (
        "<speak>a" + '<break time="10s"/>' * 59 + "b</speak>",
        48000,
    ),
}


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _one(name: str) -> None:
    from sentiric_tts.failures import RequestError
    from sentiric_tts.runtime import Runtime
    from sentiric_tts.settings import Settings
    from sentiric_tts.synthesis.request import SynthesisRequest

    text, rate = CASES[name]
    with tempfile.TemporaryDirectory() as data_dir:
        # The pause limit is raised so the largest case is all silence: the same memory as speech
        # of that length, without minutes of engine time.
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=Path(data_dir),
            engine="piper",
            grpc_enabled=False,
            max_pause_seconds=600,
        )
        runtime = Runtime.build(settings)
        runtime.start()
        before = _peak_mib()
        started = time.perf_counter()
        try:
            _, body = asyncio.run(runtime.pipeline.synthesize(SynthesisRequest(text=text, sample_rate=rate)))
            outcome = f"{len(body) / 2**20:.1f} MiB file"
        except RequestError as exc:
            outcome = f"{exc.status} {exc.code}"
        seconds = time.perf_counter() - started
        after = _peak_mib()
        runtime.stop()
    print(f"| {name} | {outcome} | {seconds:.1f} s | {before:.0f} | {after:.0f} | +{after - before:.0f} |")


def main() -> None:
    if len(sys.argv) > 1:
        _one(sys.argv[1])
        return
    print("| request | outcome | time | VmHWM before (MiB) | after (MiB) | peak added (MiB) |")
    print("|---|---|---|---|---|---|")
    for name in CASES:
        subprocess.run([sys.executable, __file__, name], check=True)


if __name__ == "__main__":
    main()
