"""Open mode that is safe on a LAN: what a web page on another site can make a browser send is
refused (cross-origin writes, DNS rebinding, cross-origin WebSockets), and Gradio's files stay
in the data folder within bounds. Against real servers on the Piper engine."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from sentiric_tts.doors.gradio.files import GradioFolder
from tests.support.audio import pcm16
from tests.support.server import isolated_settings, running_server, serve_in_subprocess

EVIL = "https://evil.example"
APP = "https://app.example"
SPEAK = {"text": "Hello.", "output_format": "pcm"}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = isolated_settings(
        tmp_path_factory.mktemp("open-mode"), cors_origins=APP, allowed_hosts="tts.example.com,*.lan"
    )
    with running_server(settings) as url:
        yield url


@pytest.fixture()
def client(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=120) as http:
        yield http


def assert_refused_cross_origin(response: httpx.Response, origin: str = EVIL) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "cross_origin_refused"
    assert f"A page from '{origin}'" in error["message"] and "TTS_CORS_ORIGINS" in error["message"]


# --- cross-origin writes ---


def test_a_cross_origin_multipart_post_creates_no_voice(client: httpx.Client) -> None:
    before = client.get("/api/voices").json()
    clip = ("clip.wav", b"RIFF" + b"\0" * 64, "audio/wav")
    refused = client.post(
        "/api/voices", data={"name": "Planted"}, files={"files": clip}, headers={"Origin": EVIL}
    )
    assert_refused_cross_origin(refused)
    assert client.get("/api/voices").json() == before
    # Every state-changing method is checked, on every door's routes.
    assert_refused_cross_origin(client.delete("/api/voices/anything", headers={"Origin": EVIL}))
    assert_refused_cross_origin(client.post("/api/tts", json=SPEAK, headers={"Origin": "null"}), "null")


def test_a_cross_origin_post_to_the_openai_route_gets_openais_error_shape(client: httpx.Client) -> None:
    body = {"model": "tts-1", "input": "Hello.", "voice": "alloy"}
    refused = client.post("/v1/audio/speech", json=body, headers={"Origin": EVIL})
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "cross_origin_refused" and error["type"] == "invalid_request_error"
    assert "TTS_CORS_ORIGINS" in error["message"]


@pytest.mark.parametrize(
    "origin",
    [
        None,  # curl, SDKs: no Origin at all
        "own",  # the dashboard's own page
        APP,  # listed in TTS_CORS_ORIGINS
    ],
)
def test_posts_without_origin_from_the_own_origin_and_from_listed_origins_work(
    client: httpx.Client, base: str, origin: str | None
) -> None:
    headers = {} if origin is None else {"Origin": base if origin == "own" else origin}
    response = client.post("/api/tts", json=SPEAK, headers=headers)
    assert response.status_code == 200, response.text
    assert len(pcm16(response.content)) > 22050 / 4
    if origin == APP:
        assert response.headers["access-control-allow-origin"] == APP


def test_reads_from_any_origin_are_answered(client: httpx.Client) -> None:
    # A page elsewhere cannot read them without CORS; refusing would only break links.
    assert client.get("/api/speakers", headers={"Origin": EVIL}).status_code == 200


def test_any_origin_when_cors_allows_any(tmp_path: Path) -> None:
    with running_server(isolated_settings(tmp_path, cors_origins="*")) as url:
        response = httpx.post(f"{url}/api/tts", json=SPEAK, headers={"Origin": EVIL}, timeout=120)
    assert response.status_code == 200


# --- DNS rebinding: the Host header ---


def with_host(client: httpx.Client, host: str, path: str = "/api/speakers") -> httpx.Response:
    return client.get(path, headers={"Host": host})


@pytest.mark.parametrize("host", ["evil.example", "evil.example:14030", "localhost.evil.example", "lan"])
def test_a_foreign_host_is_refused_with_421(client: httpx.Client, host: str) -> None:
    refused = with_host(client, host)
    assert refused.status_code == 421
    error = refused.json()["error"]
    assert error["code"] == "host_not_allowed"
    assert f"host name '{host.split(':')[0]}'" in error["message"]
    assert "TTS_ALLOWED_HOSTS" in error["message"]


def test_the_default_hosts_and_the_listed_ones_are_answered(client: httpx.Client, base: str) -> None:
    port = base.rsplit(":", 1)[1]
    machine = socket.gethostname()
    hosts = [
        f"127.0.0.1:{port}",
        f"localhost:{port}",
        "LOCALHOST.",  # case and a trailing dot change nothing
        f"[::1]:{port}",
        "10.1.2.3",  # any IP address: a rebinding page always has a name
        machine,
        f"{machine}:{port}",
        "tts.example.com",  # TTS_ALLOWED_HOSTS
        "box.lan",  # its *.lan
    ]
    for host in hosts:
        assert with_host(client, host).status_code == 200, host


def test_health_probes_answer_any_host(client: httpx.Client) -> None:
    for path in ("/health/live", "/health/ready", "/health"):
        assert with_host(client, "pod-name.internal", path).status_code == 200


def test_with_api_keys_any_host_is_answered_and_the_key_still_decides(tmp_path: Path) -> None:
    with running_server(isolated_settings(tmp_path, api_keys="k1")) as url:
        refused = httpx.get(f"{url}/api/voices", headers={"Host": "tts.svc.cluster.local"})
        allowed = httpx.get(
            f"{url}/api/voices", headers={"Host": "tts.svc.cluster.local", "Authorization": "Bearer k1"}
        )
        assert refused.status_code == 401 and allowed.status_code == 200
        # The Origin check stays on with keys (a page never has the key, but may have a cookie-less form).
        crossed = httpx.post(
            f"{url}/api/tts", json=SPEAK, headers={"Origin": EVIL, "Authorization": "Bearer k1"}, timeout=60
        )
        assert_refused_cross_origin(crossed)


def test_allowed_hosts_star_answers_any_host(tmp_path: Path) -> None:
    with running_server(isolated_settings(tmp_path, allowed_hosts="*")) as url:
        assert httpx.get(f"{url}/api/speakers", headers={"Host": "evil.example"}).status_code == 200


# --- the WebSocket ---


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/ws/tts"


def refusal_event(base: str, **options: Any) -> tuple[dict[str, Any], int | None]:
    """The event a refused WebSocket gets, and its close code."""
    with connect(ws_url(base), open_timeout=30, **options) as ws:
        event = json.loads(ws.recv(timeout=30))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=30)
        return event, ws.close_code


def test_a_websocket_from_a_foreign_origin_is_closed_with_a_policy_error(base: str) -> None:
    event, code = refusal_event(base, origin=EVIL)
    assert event["type"] == "error" and event["code"] == "cross_origin_refused"
    assert "open a WebSocket" in event["message"] and "TTS_CORS_ORIGINS" in event["message"]
    assert code == 1008


def test_a_websocket_under_a_foreign_host_is_closed_with_a_policy_error(base: str) -> None:
    port = int(base.rsplit(":", 1)[1])
    # What a rebinding page does: the service's address, the attacker's name in Host.
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        event, code = refusal_event(f"http://evil.example:{port}", sock=sock)
    assert event["code"] == "host_not_allowed" and code == 1008


def test_two_host_headers_are_refused(base: str) -> None:
    port = int(base.rsplit(":", 1)[1])
    # HTTP clients refuse to send this; a raw socket does not.
    request = f"GET /api/speakers HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request.encode() + b"Connection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert "one Host header" in json.loads(body)["error"]["message"]


@pytest.mark.parametrize("origin", [None, "own", APP])
def test_websockets_without_origin_from_the_own_origin_and_from_listed_origins_speak(
    base: str, origin: str | None
) -> None:
    options: dict[str, Any] = {} if origin is None else {"origin": base if origin == "own" else origin}
    with connect(ws_url(base), open_timeout=30, **options) as ws:
        ws.send(json.dumps({"type": "start", "format": "pcm"}))
        assert json.loads(ws.recv(timeout=60))["type"] == "started"
        ws.send(json.dumps({"type": "text", "text": "Hello there."}))
        ws.send(json.dumps({"type": "close"}))
        audio = b"".join(frame for frame in ws if isinstance(frame, bytes))
    assert len(audio) > 22050 // 2


# --- Gradio's files ---


def upload(base: str, *files: tuple[str, bytes]) -> httpx.Response:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    return httpx.post(f"{base}/gradio/gradio_api/upload", files=parts, timeout=60)


def test_gradio_uploads_land_in_the_data_folder_and_are_bounded(tmp_path: Path) -> None:
    pytest.importorskip("gradio", reason="gradio is not installed (the gradio extra)")
    # Its own process: Gradio's folder is one per process (the first app's).
    process, base = serve_in_subprocess(
        tmp_path,
        TTS_GRPC_ENABLED="false",
        TTS_CLONE_MAX_FILE_BYTES="4096",
        TTS_GRADIO_MAX_FILES="10",
    )
    folder = (tmp_path / "cache" / "gradio").resolve()
    try:
        stored = upload(base, ("one.wav", b"1" * 1000), ("two.wav", b"2" * 1000))
        assert stored.status_code == 200, stored.text
        paths = [Path(path).resolve() for path in stored.json()]
        assert len(paths) == 2 and all(path.is_relative_to(folder) for path in paths)
        assert sorted(path.read_bytes()[:1] for path in paths) == [b"1", b"2"]

        too_big = upload(base, ("big.wav", b"x" * 4097))
        assert too_big.status_code == 413 and "4096" in too_big.text

        too_many = upload(base, *[(f"clip{n}.wav", b"c" * 100) for n in range(6)])
        assert too_many.status_code == 413
        assert too_many.json()["error"]["code"] == "too_many_files"
        assert "at most 5 files" in too_many.json()["error"]["message"]

        # The refused uploads' parts that Gradio had written count until Gradio removes them (it
        # does so after answering): start filling from the two stored files alone.
        deadline = time.monotonic() + 30
        while GradioFolder(folder, 10, 10**9).usage().files != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert GradioFolder(folder, 10, 10**9).usage().files == 2, "the refused uploads left files"
        # Fill the folder to its bound (10 files): then Gradio's writers are refused until files age out.
        for batch in range(4):
            assert upload(base, *[(f"b{batch}-{n}.wav", b"f" * 100) for n in range(2)]).status_code == 200
        full = upload(base, ("late.wav", b"l" * 100))
        assert full.status_code == 503
        assert full.json()["error"]["code"] == "gradio_files_full"
        assert int(full.headers["retry-after"]) >= 1
        assert httpx.post(f"{base}/api/tts", json=SPEAK, timeout=120).status_code == 200  # the API goes on
    finally:
        process.terminate()
        process.wait(timeout=60)
        process.communicate()


def test_the_sweep_deletes_old_files_and_their_folders_and_frees_room(tmp_path: Path) -> None:
    folder = GradioFolder(tmp_path, max_files=2, max_bytes=10**9, keep_s=3600)
    old = tmp_path / "abc" / "old.wav"
    old.parent.mkdir()
    old.write_bytes(b"o" * 10)
    fresh = tmp_path / "def" / "fresh.wav"
    fresh.parent.mkdir()
    fresh.write_bytes(b"f" * 10)
    an_hour_ago = time.time() - 3700
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(old.parent, (an_hour_ago, an_hour_ago))
    assert folder.usage().files == 2
    assert folder.room() is None  # full, but the old file goes at once
    assert not old.exists() and not old.parent.exists() and fresh.exists()
    (tmp_path / "def" / "second.wav").write_bytes(b"s")
    retry = folder.room()
    assert retry is not None and 1 <= retry <= 3600  # full of fresh files: retry when one ages out
