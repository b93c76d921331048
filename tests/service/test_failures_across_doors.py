"""One failure reads the same on every door, in that door's own form, and an engine's own error
text never reaches a client. Real doors on a live service: HTTP, OpenAI (JSON and SSE), WebSocket
and gRPC, with a Piper voice that fails on every run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from websockets.sync.client import connect

from sentiric_tts.doors.grpc.contract import pb
from sentiric_tts.failure_docs import render_failure_table
from sentiric_tts.failures import ENGINE_FAILURE_MESSAGE
from tests.support.broken_voice import BROKEN_VOICE, service_with_broken_voice
from tests.support.grpc_client import Service, run, stub, unary

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with service_with_broken_voice(tmp_path_factory.mktemp("failures-data")) as live:
        yield live


def http_failure(service: Service, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    response = httpx.post(f"{service.http}/api/tts", json=body, timeout=120)
    return response.status_code, response.json()["error"]


def openai_failure(service: Service, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    response = httpx.post(f"{service.http}/v1/audio/speech", json={"model": "tts-1", **body}, timeout=120)
    return response.status_code, response.json()["error"]


def openai_sse_error(service: Service, voice: str) -> dict[str, object]:
    body = {"model": "tts-1", "input": "This one fails.", "voice": voice, "stream_format": "sse"}
    with httpx.stream("POST", f"{service.http}/v1/audio/speech", json=body, timeout=120) as response:
        assert response.status_code == 200
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1]["type"] == "error", events[-1]
    return dict(events[-1]["error"])


def websocket_error(service: Service, voice: str, text: str) -> dict[str, object]:
    with connect(service.http.replace("http://", "ws://") + "/ws/tts", open_timeout=30) as ws:
        ws.send(json.dumps({"type": "start", "voice": voice, "format": "pcm"}))
        ws.send(json.dumps({"type": "text", "text": text}))
        ws.send(json.dumps({"type": "close"}))
        while True:
            frame = ws.recv(120)
            if isinstance(frame, str) and json.loads(frame)["type"] == "error":
                return dict(json.loads(frame))


def grpc_error(service: Service, **fields: object) -> grpc.aio.AioRpcError:
    try:
        run(lambda: unary(service.target, **fields))
    except grpc.aio.AioRpcError as error:
        return error
    raise AssertionError("the call succeeded")


def grpc_stream_error(service: Service, **fields: object) -> grpc.aio.AioRpcError:
    async def read() -> None:
        async with grpc.aio.insecure_channel(service.target) as channel:
            async for _ in stub(channel).CoquiSynthesizeStream(
                pb.CoquiSynthesizeStreamRequest(**fields), timeout=120
            ):
                pass

    try:
        run(read)
    except grpc.aio.AioRpcError as error:
        return error
    raise AssertionError("the call succeeded")


def test_an_engine_failure_reads_the_same_fixed_message_on_every_door(service: Service) -> None:
    status, error = http_failure(service, {"text": "This one fails.", "voice": BROKEN_VOICE})
    assert (status, error["code"], error["message"]) == (500, "synthesis_failed", ENGINE_FAILURE_MESSAGE)

    # OpenAI's audio response streams: begun, it can only end incomplete, never as a clean end.
    with pytest.raises(httpx.RemoteProtocolError):
        openai_failure(service, {"input": "This one fails.", "voice": BROKEN_VOICE})

    error = openai_sse_error(service, BROKEN_VOICE)
    assert (error["code"], error["message"]) == ("synthesis_failed", ENGINE_FAILURE_MESSAGE)

    event = websocket_error(service, BROKEN_VOICE, "This one fails.")
    assert (event["code"], event["message"]) == ("synthesis_failed", ENGINE_FAILURE_MESSAGE)

    for error in (
        grpc_error(service, text="This one fails.", voice=BROKEN_VOICE),
        grpc_stream_error(service, text="This one fails.", voice=BROKEN_VOICE),
    ):
        assert (error.code(), error.details()) == (grpc.StatusCode.INTERNAL, ENGINE_FAILURE_MESSAGE)


def test_a_request_error_has_one_code_and_message_on_every_door(service: Service) -> None:
    status, http = http_failure(service, {"text": "Hello.", "voice": "Nobody"})
    assert status == 422 and http["code"] == "unknown_voice" and http["param"] == "voice"

    status, openai = openai_failure(service, {"input": "Hello.", "voice": "Nobody"})
    assert status == 400 and (openai["code"], openai["message"]) == (http["code"], http["message"])

    event = websocket_error(service, "Nobody", "Hello.")
    assert (event["code"], event["message"], event["param"]) == (http["code"], http["message"], "voice")

    error = grpc_error(service, text="Hello.", voice="Nobody")
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, http["message"])


def test_the_api_guide_lists_what_each_door_makes_of_each_failure() -> None:
    guide = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert render_failure_table() in guide, "regenerate with: python -m sentiric_tts.failure_docs"


def test_the_other_servers_apis_read_the_same(service: Service) -> None:
    """The doors for xtts-api-server's and Piper's clients (docs/clients.md): the same words, and
    an engine's failure never reaches them as its own text or a traceback."""
    status, http = http_failure(service, {"text": "Hello.", "voice": "Nobody"})
    for path, body in (
        ("/xtts-api/tts_to_audio/", {"text": "Hello.", "speaker_wav": "Nobody", "language": "en"}),
        ("/synthesize", {"text": "Hello.", "voice": "Nobody"}),
    ):
        response = httpx.post(service.http + path, json=body, timeout=120)
        assert response.status_code == status
        assert response.json()["error"] == http, path

    failed = httpx.post(
        f"{service.http}/xtts-api/tts_to_audio/",
        json={"text": "This one fails.", "speaker_wav": BROKEN_VOICE, "language": "en"},
        timeout=120,
    )
    assert failed.status_code == 500
    assert failed.json()["detail"] == failed.json()["error"]["message"] == ENGINE_FAILURE_MESSAGE
    # Piper's answer streams: begun, it can only end incomplete.
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST", f"{service.http}/synthesize", json={"text": "This one fails.", "voice": BROKEN_VOICE}
        ) as response,
    ):
        response.read()
