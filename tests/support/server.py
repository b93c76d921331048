"""A real uvicorn server on a free loopback port, in a background thread."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from sentiric_tts.app import create_app
from sentiric_tts.http_server import uvicorn_config
from sentiric_tts.settings import Settings


def isolated_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings isolated from the developer's .env and ./data, on the Piper engine by default."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "engine": "piper",
        # Off unless a test asks: test servers run side by side and would all claim port 14031.
        "grpc_enabled": False,
        # The same for Wyoming's port 10200.
        "wyoming_enabled": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(settings: Settings, startup_timeout_s: float = 300.0) -> Iterator[str]:
    """Serve `create_app(settings)` with the production server configuration and yield its base
    URL once /health/ready answers 200."""
    port = free_port()
    server = uvicorn.Server(uvicorn_config(create_app(settings), settings, host="127.0.0.1", port=port))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_timeout_s
    while True:
        if not thread.is_alive():
            raise RuntimeError("the server exited during start-up; see the log above")
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError("the server did not become ready")
        time.sleep(0.05)
    try:
        yield base_url
    finally:
        server.should_exit = True
        thread.join(30)


def serve_in_subprocess(
    data_dir: Path, startup_timeout_s: float = 120.0, **env: str
) -> tuple[subprocess.Popen[str], str]:
    """`python -m sentiric_tts serve` in its own process (for signal tests and benchmarks), with
    `TTS_*` variables from `env`; returns it and its base URL once /health/ready answers 200, or
    once it exited or `startup_timeout_s` passed."""
    port = int(env.pop("TTS_PORT", "0")) or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sentiric_tts", "serve", "--host", "127.0.0.1"],
        cwd=data_dir,
        env={
            **os.environ,
            "TTS_DATA_DIR": str(data_dir),
            "TTS_ENGINE": "piper",
            "TTS_PORT": str(port),
            "TTS_WYOMING_ENABLED": "false",  # test servers side by side would all claim 10200
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_timeout_s
    while time.monotonic() < deadline:  # bounded wait for start-up
        if process.poll() is not None:
            break
        try:
            if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    return process, base
