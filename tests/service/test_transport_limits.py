"""Slow, idle and oversized clients against the real service: every door bounds what a client can
hold (request heads, bodies, WebSocket frames, gRPC metadata, connections that say nothing), and
refuses past the bound with an answer that says what to fix, while everyone else is served."""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from sentiric_tts.doors.http.body_limits import BodyLimits
from sentiric_tts.http_server import MAX_HEADERS, ws_max_message_bytes
from sentiric_tts.settings import Settings
from tests.support.server import free_port, isolated_settings, running_server, serve_in_subprocess

SHORT_S = 1.0  # the idle and read timeouts of the server that tests them
WAIT_S = 20.0  # a bounded wait for something that should come after SHORT_S


# --- servers ---


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server whose idle and read timeouts are short enough to watch them act."""
    settings = isolated_settings(
        tmp_path_factory.mktemp("quick"),
        http_idle_timeout_seconds=SHORT_S,
        http_read_timeout_seconds=SHORT_S,
    )
    with running_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A server with gRPC whose timeouts outlast a test, so held connections stay held."""
    grpc_port = free_port()
    settings = isolated_settings(
        tmp_path_factory.mktemp("patient"),
        grpc_enabled=True,
        grpc_host="127.0.0.1",
        grpc_port=grpc_port,
        http_idle_timeout_seconds=600,
        http_read_timeout_seconds=600,
    )
    with running_server(settings) as url:
        yield url, f"127.0.0.1:{grpc_port}"


class Subprocess:
    def __init__(self, data_dir: Path, spool_dir: Path) -> None:
        self.data_dir = data_dir
        self.spool_dir = spool_dir
        self.process, self.url = serve_in_subprocess(
            data_dir, TMPDIR=str(spool_dir), TTS_GRPC_ENABLED="false", TTS_GRADIO_ENABLED="false"
        )

    def status(self, field: str) -> int:
        """A /proc/<pid>/status field in bytes (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    def largest_spooled_file(self) -> int:
        """The largest file the server holds open in its temporary folder (spooled uploads are
        unlinked at once, so only their descriptors show them)."""
        largest = 0
        fd_dir = Path(f"/proc/{self.process.pid}/fd")
        for fd in os.listdir(fd_dir):
            try:
                if os.readlink(fd_dir / fd).startswith(str(self.spool_dir)):
                    largest = max(largest, os.stat(fd_dir / fd).st_size)
            except OSError:
                continue  # closed in the meantime
        return largest


@pytest.fixture(scope="module")
def own_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Subprocess]:
    """The production command in its own process: its memory and open files are its own."""
    spool = tmp_path_factory.mktemp("spool")
    server = Subprocess(tmp_path_factory.mktemp("own"), spool)
    try:
        assert httpx.get(f"{server.url}/health/ready", timeout=5).status_code == 200
        yield server
    finally:
        server.process.terminate()
        server.process.communicate(timeout=60)


# --- raw HTTP/1.1 ---


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def open_socket(url: str) -> socket.socket:
    sock = socket.create_connection(address(url), timeout=WAIT_S)
    sock.settimeout(WAIT_S)
    return sock


def read_to_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a bounded wait per read)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def error_of(response: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]


def head(url: str, path: str, *headers: str, method: str = "GET") -> bytes:
    host = url.removeprefix("http://")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *headers, "", ""]
    return "\r\n".join(lines).encode()


def slow_body_head(url: str) -> bytes:
    """A request that declares 1,000 bytes of body and sends 10."""
    return head(url, "/api/tts", "Content-Type: application/json", "Content-Length: 1000", method="POST") + (
        b'{"text": "'
    )


def live(url: str) -> None:
    response = httpx.get(f"{url}/health/live", timeout=5)
    assert response.status_code == 200


def grpc_health(channel: grpc.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> None:
    check = health_pb2_grpc.HealthStub(channel).Check
    response = check(health_pb2.HealthCheckRequest(), metadata=metadata, timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


# --- request heads ---


def test_a_huge_header_gets_431_while_the_server_keeps_answering(patient: tuple[str, str]) -> None:
    """Four clients each send a 250 MB header (the attack that starved every door for minutes):
    each is cut after the head limit, and HTTP and gRPC health probes are answered all the while."""
    url, grpc_target = patient
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    outcomes: list[tuple[int, bytes]] = []

    def attack() -> None:
        with closing(open_socket(url)) as sock:
            sock.sendall(head(url, "/health/live").removesuffix(b"\r\n") + b"X-Huge: ")
            sent = 0
            try:
                while sent < 250_000_000:
                    sock.sendall(b"a" * 1_000_000)
                    sent += 1_000_000
            except OSError:
                pass  # the server closed: the point
            outcomes.append((sent, read_to_close(sock)))

    attackers = [threading.Thread(target=attack) for _ in range(4)]
    for thread in attackers:
        thread.start()
    with grpc.insecure_channel(grpc_target) as channel:
        while any(thread.is_alive() for thread in attackers):
            live(url)
            grpc_health(channel)
    for thread in attackers:
        thread.join()
    assert len(outcomes) == 4
    for sent, response in outcomes:
        status, error = error_of(response)
        assert status == 431 and error["code"] == "headers_too_large"
        assert f"{settings.server.max_header_bytes} bytes" in error["message"]
        assert sent < 50_000_000  # cut at the limit plus what the sockets buffer, not 250 MB
    live(url)


def test_a_huge_trailer_after_a_chunked_body_gets_431(quick: str) -> None:
    """Trailers are parsed like headers (and buffered the same way): the same budget holds."""
    with closing(open_socket(quick)) as sock:
        request = head(
            quick, "/api/tts", "Content-Type: application/json", "Transfer-Encoding: chunked", method="POST"
        )
        sock.sendall(request + b"2\r\n{}\r\n0\r\nX-Trailer: ")
        sent = 0
        try:
            while sent < 100_000_000:
                sock.sendall(b"a" * 1_000_000)
                sent += 1_000_000
        except OSError:
            pass
        status, error = error_of(read_to_close(sock))
    assert status == 431 and error["code"] == "headers_too_large" and "trailers" in error["message"]
    assert sent < 50_000_000
    live(quick)


def test_too_many_headers_get_431_and_a_browser_sized_head_is_served(quick: str) -> None:
    many = [f"X-Header-{i}: v" for i in range(MAX_HEADERS + 1)]
    with closing(open_socket(quick)) as sock:
        sock.sendall(head(quick, "/health/live", *many))
        status, error = error_of(read_to_close(sock))
    assert status == 431 and error["code"] == "headers_too_large"
    assert f"more than {MAX_HEADERS} headers" in error["message"]

    browser = {f"x-extra-{i}": "v" * 40 for i in range(40)} | {"cookie": "session=" + "c" * 8000}
    assert httpx.get(f"{quick}/health/live", headers=browser, timeout=5).status_code == 200


def test_the_openai_routes_get_openai_shaped_refusals(quick: str) -> None:
    many = [f"X-Header-{i}: v" for i in range(MAX_HEADERS + 1)]
    with closing(open_socket(quick)) as sock:
        sock.sendall(head(quick, "/v1/audio/speech", *many, method="POST"))
        status, error = error_of(read_to_close(sock))
    assert status == 431
    assert error["type"] == "invalid_request_error" and error["code"] == "headers_too_large"


# --- timeouts ---


def test_a_silent_connection_is_closed_after_the_idle_timeout(quick: str) -> None:
    with closing(open_socket(quick)) as sock:
        assert read_to_close(sock) == b""  # closed without a word: no request was in progress


def test_a_kept_alive_connection_is_closed_after_the_idle_timeout(quick: str) -> None:
    with closing(open_socket(quick)) as sock:
        sock.sendall(head(quick, "/health/live"))
        response = read_to_close(sock)
    assert response.startswith(b"HTTP/1.1 200") and response.endswith(b'{"status":"live"}')


def test_a_body_that_stops_arriving_is_cut_with_408(quick: str) -> None:
    """Declares 1,000 bytes, sends 10 and stops (no answer after 20 s before)."""
    with closing(open_socket(quick)) as sock:
        sock.sendall(slow_body_head(quick))
        status, error = error_of(read_to_close(sock))
    assert status == 408 and error["code"] == "request_timeout"
    assert "body stopped arriving" in error["message"]
    live(quick)


def test_a_head_trickled_a_byte_at_a_time_is_cut_at_the_read_timeout(quick: str) -> None:
    """Slowloris: each byte comes well within the timeout, but the head as a whole does not."""
    with closing(open_socket(quick)) as sock:
        sock.sendall(head(quick, "/health/live").removesuffix(b"\r\n"))
        stop = threading.Event()

        def trickle() -> None:
            while not stop.wait(SHORT_S / 5):
                try:
                    sock.sendall(b"X")
                except OSError:
                    return

        trickler = threading.Thread(target=trickle)
        trickler.start()
        try:
            status, error = error_of(read_to_close(sock))
        finally:
            stop.set()
            trickler.join()
    assert status == 408 and error["code"] == "request_timeout"
    assert "headers did not arrive" in error["message"]


def test_streams_outlast_the_timeouts(quick: str) -> None:
    """No timer runs while a response is written or on an upgraded WebSocket: a slow reader of a
    long stream and a quiet WebSocket session are not cut."""
    text = "This sentence is spoken while the client takes its time. " * 3
    audio = bytearray()
    with httpx.stream(
        "POST", f"{quick}/api/tts", json={"text": text, "stream": True}, timeout=120
    ) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            audio.extend(chunk)
            time.sleep(SHORT_S / 4)
    assert audio[:4] == b"RIFF" and len(audio) > 44_100  # complete: a clean end of the stream

    with connect(quick.replace("http://", "ws://") + "/ws/tts", open_timeout=30) as ws:
        time.sleep(3 * SHORT_S)  # quiet for longer than both timeouts
        ws.send(json.dumps({"type": "start", "format": "pcm"}))
        assert json.loads(ws.recv(60))["type"] == "started"


# --- bodies ---


def chunks(total: int, counter: list[int], preamble: bytes = b"", piece: int = 1 << 16) -> Iterator[bytes]:
    """A chunked body of `total` bytes; counter[0] counts what the client got to send."""
    counter[0] = 0
    if preamble:
        counter[0] += len(preamble)
        yield preamble
    block = b"\0" * piece
    while counter[0] < total:
        counter[0] += piece
        yield block


def test_a_1_gb_upload_is_refused_after_the_limit_not_after_spooling(own_process: Subprocess) -> None:
    limits = BodyLimits.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    boundary = "limitsboundary"
    preamble = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\nHello.\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="clip.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    data_before = sum(path.stat().st_size for path in own_process.data_dir.rglob("*") if path.is_file())
    spool_before = set(own_process.spool_dir.iterdir())
    largest_spooled = [0]
    done = threading.Event()

    def watch_spool() -> None:
        while not done.wait(0.01):
            largest_spooled[0] = max(largest_spooled[0], own_process.largest_spooled_file())

    watcher = threading.Thread(target=watch_spool)
    watcher.start()
    sent = [0]
    try:
        response = httpx.post(
            f"{own_process.url}/api/tts/clone",
            content=chunks(1 << 30, sent, preamble),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
            timeout=120,
        )
    finally:
        done.set()
        watcher.join()
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "body_too_large" and f"{limits.upload_bytes}-byte limit" in error["message"]
    assert response.headers["connection"] == "close"
    assert sent[0] < 2 * limits.upload_bytes < (1 << 30) // 8  # the client stopped long before 1 GB
    assert largest_spooled[0] <= limits.upload_bytes  # spooling stopped at the limit
    assert set(own_process.spool_dir.iterdir()) == spool_before  # nothing left behind either
    data_after = sum(path.stat().st_size for path in own_process.data_dir.rglob("*") if path.is_file())
    assert data_after - data_before < 1 << 20
    assert httpx.get(f"{own_process.url}/health/live", timeout=5).status_code == 200


def test_a_200_mb_json_body_is_413_at_a_bounded_memory_cost(own_process: Subprocess) -> None:
    """+595 MB resident before its 422; now refused at the JSON limit, declared or chunked."""
    limits = BodyLimits.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    total = 200_000_000
    rss_before, peak_before = own_process.status("VmRSS"), own_process.status("VmHWM")
    for declared in (True, False):
        sent = [0]
        headers = {"content-type": "application/json"}
        if declared:
            headers["content-length"] = str(total + len(b'{"text": "'))
        response = httpx.post(
            f"{own_process.url}/api/tts",
            content=chunks(total, sent, b'{"text": "'),
            headers=headers,
            timeout=120,
        )
        assert response.status_code == 413, response.text
        error = response.json()["error"]
        assert error["code"] == "body_too_large"
        assert str(limits.json_bytes if not declared else limits.upload_bytes) in error["message"]
        assert sent[0] < 64_000_000  # the client stopped long before 200 MB
    grown = own_process.status("VmRSS") - rss_before
    peak_grown = own_process.status("VmHWM") - peak_before
    assert grown < 64 << 20 and peak_grown < 64 << 20, (grown, peak_grown)
    ok = httpx.post(f"{own_process.url}/api/tts", json={"text": "Small is fine."}, timeout=120)
    assert ok.status_code == 200 and ok.content[:4] == b"RIFF"


def test_the_longest_valid_json_bodies_are_under_the_limit(quick: str) -> None:
    """Every character of the longest SSML a request may carry, escaped the longest way JSON
    allows, still fits: the body limit never refuses what the request limits accept."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    filler = "<break time='1ms'/>"
    ssml = "<speak>Hello." + filler * ((settings.limits.ssml_max_bytes - 30) // len(filler)) + "</speak>"
    escaped = "".join(f"\\u{ord(char):04x}" for char in ssml)
    body = f'{{"text": "{escaped}", "text_type": "ssml"}}'.encode()
    assert len(body) > 5 * settings.limits.ssml_max_bytes
    response = httpx.post(
        f"{quick}/api/tts/plan", content=body, headers={"content-type": "application/json"}, timeout=60
    )
    assert response.status_code != 413 and "body_too_large" not in response.text


# --- held connections vs everyone else, on every door ---


def test_hundreds_of_idle_and_slow_connections_do_not_keep_others_from_being_served(
    patient: tuple[str, str],
) -> None:
    url, grpc_target = patient
    with ExitStack() as held:
        idle = [held.enter_context(closing(open_socket(url))) for _ in range(200)]
        slow = [held.enter_context(closing(open_socket(url))) for _ in range(200)]
        for sock in slow:
            sock.sendall(slow_body_head(url))

        live(url)
        speech = httpx.post(f"{url}/api/tts", json={"text": "Still served."}, timeout=60)
        assert speech.status_code == 200 and speech.content[:4] == b"RIFF"
        with grpc.insecure_channel(grpc_target) as channel:
            grpc_health(channel)

        poller = select.poll()  # not select(): the descriptors may number over 1024
        for sock in idle + slow:
            poller.register(sock, select.POLLIN)
        assert poller.poll(0) == []  # all 400 still held open (no EOF, no answer): none were shed


def test_huge_grpc_metadata_is_refused_with_a_status_and_others_are_served(patient: tuple[str, str]) -> None:
    _, grpc_target = patient
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    with grpc.insecure_channel(grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            grpc_health(channel, metadata=(("x-huge", "a" * (settings.server.max_header_bytes + 1)),))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        assert "metadata" in refused.value.details().lower()  # type: ignore[attr-defined]
        # Over grpc's own default (16 KiB) and under ours: the limit is the service's setting.
        grpc_health(channel, metadata=tuple((f"x-fine-{i}", "a" * 10_000) for i in range(3)))


# --- WebSocket frames ---


def test_a_deeply_nested_websocket_frame_gets_an_error_event_and_the_session_goes_on(quick: str) -> None:
    with connect(quick.replace("http://", "ws://") + "/ws/tts", open_timeout=30) as ws:
        ws.send("[" * 100_000)
        event = json.loads(ws.recv(30))
        assert event["type"] == "error" and event["code"] == "invalid_message"
        assert "nests" in event["message"]
        ws.send(json.dumps({"type": "start", "format": "pcm"}))
        assert json.loads(ws.recv(60))["type"] == "started"
        ws.send(json.dumps({"type": "text", "text": "Still talking."}))
        ws.send(json.dumps({"type": "close"}))
        audio = 0
        while True:
            frame = ws.recv(120)
            if isinstance(frame, bytes):
                audio += len(frame)
            elif json.loads(frame)["type"] == "done":
                break
        assert audio > 0


def test_a_websocket_message_over_the_frame_limit_is_closed_with_a_reason(quick: str) -> None:
    limit = ws_max_message_bytes(Settings(_env_file=None))  # type: ignore[call-arg]
    with connect(quick.replace("http://", "ws://") + "/ws/tts", open_timeout=30) as ws:
        ws.send(json.dumps({"type": "text", "text": "a" * limit}))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # message too big
    live(quick)
