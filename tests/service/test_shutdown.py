"""Shutdown as documented, against `python -m sentiric_tts serve` in its own process: work still
running when the shutdown grace ends is cut, and every door tells its client so (an aborted
chunked body, a whole file's 503, a WebSocket error event then close 1012, gRPC UNAVAILABLE); the
process exits 0.
(The drain itself, a stream that finishes within the grace, is in test_serving.py.)"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from sentiric_tts.doors.grpc.contract import pb
from tests.service.test_serving import LONG, VERY_LONG
from tests.support.grpc_client import stub
from tests.support.server import free_port, serve_in_subprocess

STARTED_TIMEOUT_S = 120.0  # bounded waits, not timing assertions


@contextmanager
def service(tmp_path: Path, **env: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process, base = serve_in_subprocess(tmp_path, **env)
    try:
        yield process, base
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def wait_for_draining(base: str) -> dict[str, Any]:
    """Readiness once the signal has been handled (bounded poll)."""
    body: dict[str, Any] = {}
    for _ in range(400):
        response = httpx.get(f"{base}/health/ready", timeout=10)
        body = response.json()
        if response.status_code == 503:
            break
        threading.Event().wait(0.05)
    return body


def http_stream(base: str, started: threading.Event) -> str:
    """Reads a long stream to its end; returns how it ended."""
    body = {"text": VERY_LONG, "stream": True, "output_format": "pcm"}
    with (
        httpx.Client(base_url=base, timeout=120) as client,
        client.stream("POST", "/api/tts", json=body) as response,
    ):
        assert response.status_code == 200
        try:
            for _ in response.iter_bytes():
                started.set()
        except httpx.RemoteProtocolError as exc:  # what httpx says of an incomplete chunked body
            return f"aborted: {exc}"
    return "complete"


def whole_file(base: str, started: threading.Event) -> httpx.Response:
    """A long whole-file request; `started` once its synthesis is admitted (bounded poll)."""
    with httpx.Client(base_url=base, timeout=120) as client:
        jobs = client.get("/api/status").json()["jobs_in_flight"]
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(client.post, "/api/tts", json={"text": VERY_LONG, "output_format": "pcm"})
            for _ in range(int(STARTED_TIMEOUT_S * 20)):
                if pending.done() or client.get("/api/status").json()["jobs_in_flight"] > jobs:
                    break
                threading.Event().wait(0.05)
            started.set()
            return pending.result()


def websocket_session(base: str, started: threading.Event) -> tuple[list[dict[str, Any]], int | None]:
    """Speaks many sentences, reading everything; returns the events and the close code."""
    events: list[dict[str, Any]] = []
    with connect(base.replace("http://", "ws://") + "/ws/tts", open_timeout=60) as ws:
        ws.send(json.dumps({"type": "start", "format": "pcm", "sample_rate": 16000}))
        ws.send(json.dumps({"type": "text", "text": " ".join([LONG] * 4)}))
        ws.send(json.dumps({"type": "close"}))
        try:
            while True:
                frame = ws.recv(timeout=STARTED_TIMEOUT_S)
                if isinstance(frame, bytes):
                    started.set()
                else:
                    events.append(json.loads(frame))
        except ConnectionClosed as closed:
            return events, closed.rcvd.code if closed.rcvd is not None else None


def grpc_stream(target: str, started: threading.Event) -> grpc.StatusCode:
    """Reads a long stream to its end; returns its status."""
    request = pb.CoquiSynthesizeStreamRequest(text=VERY_LONG, output_format="pcm", sample_rate=16000)
    with grpc.insecure_channel(target) as channel:
        try:
            for message in stub(channel).CoquiSynthesizeStream(request, timeout=STARTED_TIMEOUT_S):
                if message.audio_chunk:
                    started.set()
        except grpc.RpcError as error:
            return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def run_until_started(
    pool: ThreadPoolExecutor, clients: dict[str, Callable[[threading.Event], Any]]
) -> dict[str, Future[Any]]:
    """Start each client; return once every one has received audio (or has already failed)."""
    futures: dict[str, Future[Any]] = {}
    for name, client in clients.items():
        started = threading.Event()
        futures[name] = pool.submit(client, started)
        for _ in range(int(STARTED_TIMEOUT_S * 20)):
            if started.wait(0.05) or futures[name].done():
                break
        assert started.is_set(), (
            f"{name} got no audio: {futures[name].result() if futures[name].done() else ''}"
        )
    return futures


def test_streams_longer_than_the_grace_are_cut_and_each_door_says_so(tmp_path: Path) -> None:
    grpc_port = free_port()
    with (
        service(
            tmp_path,
            TTS_SHUTDOWN_GRACE_SECONDS="1",
            TTS_GRPC_HOST="127.0.0.1",
            TTS_GRPC_PORT=str(grpc_port),
        ) as (process, base),
        ThreadPoolExecutor(4) as pool,
    ):
        futures = run_until_started(
            pool,
            {
                "whole": lambda started: whole_file(base, started),
                "http": lambda started: http_stream(base, started),
                "websocket": lambda started: websocket_session(base, started),
                "grpc": lambda started: grpc_stream(f"127.0.0.1:{grpc_port}", started),
            },
        )
        process.send_signal(signal.SIGTERM)
        assert wait_for_draining(base)["status"] == "draining"
        assert httpx.get(f"{base}/health/live", timeout=10).status_code == 200  # the listener stays open

        whole = futures["whole"].result(timeout=STARTED_TIMEOUT_S)
        assert whole.status_code == 503 and whole.json()["error"]["code"] == "shutting_down"
        assert "retry on another instance" in whole.json()["error"]["message"]

        http_end = futures["http"].result(timeout=STARTED_TIMEOUT_S)
        assert http_end.startswith("aborted") and "incomplete chunked read" in http_end

        events, close_code = futures["websocket"].result(timeout=STARTED_TIMEOUT_S)
        errors = [event for event in events if event["type"] == "error"]
        assert [event["code"] for event in errors] == ["shutting_down"]
        assert "reconnect" in errors[0]["message"]
        assert not any(event["type"] == "done" for event in events)
        assert close_code == 1012  # service restart

        assert futures["grpc"].result(timeout=STARTED_TIMEOUT_S) == grpc.StatusCode.UNAVAILABLE

        assert process.wait(timeout=60) == 0


def test_a_second_signal_ends_the_drain_at_once(tmp_path: Path) -> None:
    # A grace far longer than the test waits: only the second signal can end this drain.
    with service(
        tmp_path, TTS_GRPC_ENABLED="false", TTS_SHUTDOWN_GRACE_SECONDS="600", TTS_STREAM_BUFFER_CHUNKS="1"
    ) as (
        process,
        base,
    ):
        body = {"text": VERY_LONG, "stream": True, "output_format": "pcm"}
        with (
            httpx.Client(base_url=base, timeout=120) as client,
            client.stream("POST", "/api/tts", json=body) as response,
        ):
            reader = response.iter_bytes()
            next(reader)  # then no more reading: the engine job waits on this client, in flight
            process.send_signal(signal.SIGTERM)
            assert wait_for_draining(base)["jobs_in_flight"] == 1
            process.send_signal(signal.SIGTERM)
            with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
                for _ in reader:
                    pass
        assert process.wait(timeout=60) == 0
