"""The service on a real two-node Ray Serve cluster (sentiric_tts/cluster/): Piper engine
replicas on different nodes, every request through the ingress's HTTP doors."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

pytest.importorskip("ray.serve", reason="Ray Serve is not installed (the cluster extra)")

from tests.support.audio import parse_wav, to_16k, word_error_rate
from tests.support.ray_cluster import LocalCluster, local_cluster, replica_pids, serve_config, serve_run
from tests.support.server import free_port

pytestmark = pytest.mark.cluster

TEXT = "The quick brown fox jumps over the lazy dog near the river bank."
_REPLICA_SAMPLE = re.compile(r"^(tts_replica_[a-z_]+)\{([^}]*)\} ([0-9.e+-]+)$", re.M)
_LABEL = re.compile(r'([a-z_]+)="([^"]*)"')


@dataclass
class Deployed:
    cluster: LocalCluster
    url: str


def replica_counts(url: str, metric: str) -> dict[tuple[str, str], float]:
    """(node, replica) -> the value of `metric{node,replica}` on the ingress's /metrics."""
    sample = re.compile(rf'^{metric}\{{node="([^"]+)",replica="([^"]+)"\}} ([0-9.e+]+)$', re.M)
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {(node, replica): float(count) for node, replica, count in sample.findall(text)}


def engine_calls(url: str) -> dict[tuple[str, str], float]:
    """(node, replica) -> text segments it took, from the ingress's /metrics."""
    return replica_counts(url, "tts_cluster_engine_calls_total")


def replica_figures(url: str) -> dict[tuple[str, str], dict[str, float]]:
    """(node, replica) -> its engine-side figures (tts_replica_*), from the ingress's /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    figures: dict[tuple[str, str], dict[str, float]] = {}
    for name, labels, value in _REPLICA_SAMPLE.findall(text):
        tags = dict(_LABEL.findall(labels))
        key = name + (f":{tags['outcome']}" if "outcome" in tags else "")
        figures.setdefault((tags["node"], tags["replica"]), {})[key] = float(value)
    return figures


def wait_ready(url: str, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError("the ingress did not become ready")


def speak(url: str, text: str = TEXT) -> bytes:
    response = httpx.post(f"{url}/api/tts", json={"text": text}, timeout=120)
    assert response.status_code == 200, response.text
    return response.content


def wait_for_replicas(url: str, count: int, timeout_s: float = 240) -> None:
    """Requests, two at a time, until `count` engine replicas have each taken one."""
    deadline = time.monotonic() + timeout_s
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        while len(engine_calls(url)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"engine replicas seen: {engine_calls(url)}")
            list(pool.map(lambda _: speak(url, "Hello there."), range(2)))


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    ray_dir = Path(f"/tmp/ray-tts-{free_port()}")  # short: Ray's socket paths have a length limit
    with local_cluster(ray_dir) as cluster:
        port = free_port()
        data = tmp_path_factory.mktemp("cluster-data")
        serve_run(cluster, serve_config(port, data), data / "serve.yaml")
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        wait_for_replicas(url, 2)
        yield Deployed(cluster, url)


def transcribed_wer(transcribe, wav: bytes, text: str = TEXT) -> float:  # type: ignore[no-untyped-def]
    rate, _, samples = parse_wav(wav)
    return word_error_rate(text, transcribe(to_16k(samples, rate)))


def test_two_engine_replicas_on_two_nodes_speak_through_every_http_door(
    deployed: Deployed, transcribe
) -> None:  # type: ignore[no-untyped-def]
    url = deployed.url
    before = engine_calls(url)
    assert len({node for node, _ in before}) == 2, f"replicas on one node: {before}"

    def whole(_: int) -> bytes:
        return speak(url)

    def openai(_: int) -> bytes:
        response = httpx.post(
            f"{url}/v1/audio/speech",
            json={"model": "tts-1", "input": TEXT, "voice": "alloy", "response_format": "wav"},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        return response.content

    def streamed(_: int) -> bytes:
        with httpx.stream(
            "POST", f"{url}/api/tts", json={"text": TEXT, "stream": True}, timeout=120
        ) as response:
            assert response.status_code == 200
            return b"".join(response.iter_bytes())

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        bodies = list(
            pool.map(
                lambda job: job[0](job[1]),
                [(door, n) for door in (whole, openai, streamed) for n in range(2)],
            )
        )
    for body in bodies:
        assert transcribed_wer(transcribe, body) <= 0.10
    after = engine_calls(url)
    served = {key for key, count in after.items() if count > before.get(key, 0)}
    assert len(served) == 2, f"calls per replica: before {before}, after {after}"
    # Each replica's own figures, labelled by replica and node, on the ingress's /metrics: from
    # its routing stats, so they catch up with the calls within a stats period or two.
    deadline = time.monotonic() + 60
    while True:
        figures = replica_figures(url)
        caught_up = served <= set(figures) and all(
            figures[key].get("tts_replica_segments_total:completed", 0) >= after[key] for key in served
        )
        if caught_up or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert caught_up, f"replica figures: {figures}, calls: {after}"
    for key in served:
        own = figures[key]
        assert own["tts_replica_synthesis_seconds_total"] > 0, own
        assert own["tts_replica_audio_seconds_total"] > 0, own
        assert own["tts_replica_queue_depth"] >= 0, own
        assert own["tts_replica_conditionings"] == 0, own  # Piper: no cloned voices


# One long opening sentence: Piper renders it in pieces (someone waits for it), so a replica
# killed while it renders has already sent audio of it.
LONG = (
    "Every morning the old lighthouse keeper climbed the winding stairs to polish the great lamp "
    "and look far out over the grey and restless sea for ships. He wrote down the weather."
)


def _stream_outcome(url: str, started: list[int], index: int) -> tuple[str, bytes]:
    """("complete" | "broken", body) of one streamed request; `started[index]` counts its bytes."""
    body = bytearray()
    try:
        with httpx.stream(
            "POST", f"{url}/api/tts", json={"text": LONG, "stream": True}, timeout=120
        ) as response:
            assert response.status_code == 200
            for chunk in response.iter_raw():
                body.extend(chunk)
                started[index] = len(body)
    except httpx.RemoteProtocolError:  # the connection closed without the chunked body's end
        return "broken", bytes(body)
    return "complete", bytes(body)


def _websocket_outcome(url: str, started: list[int], index: int) -> tuple[str, str]:
    """("complete", "") or ("error", its code) of one WebSocket session speaking LONG;
    `started[index]` counts its audio bytes."""
    with connect(url.replace("http://", "ws://") + "/ws/tts", open_timeout=60) as ws:
        ws.send(json.dumps({"type": "start", "format": "pcm"}))
        ws.send(json.dumps({"type": "text", "text": LONG}))
        ws.send(json.dumps({"type": "close"}))
        while True:
            frame = ws.recv(120)
            if isinstance(frame, bytes):
                started[index] += len(frame)
                continue
            event = json.loads(frame)
            if event["type"] == "error":
                return "error", str(event["code"])
            if event["type"] == "done":
                return "complete", ""


def test_a_killed_engine_replica_breaks_its_streams_only_and_is_replaced(
    deployed: Deployed, transcribe
) -> None:  # type: ignore[no-untyped-def]
    url, cluster = deployed.url, deployed.cluster
    victims = replica_pids(cluster, "Engine", node=1)
    assert len(victims) == 1, victims
    before = set(engine_calls(url))
    started = [0] * 6
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        streams = [pool.submit(_stream_outcome, url, started, n) for n in range(4)]
        sessions = [pool.submit(_websocket_outcome, url, started, n) for n in (4, 5)]
        deadline = time.monotonic() + 60
        while min(started) < 2000 and time.monotonic() < deadline:  # each has audio on its way
            time.sleep(0.005)
        os.kill(victims[0], signal.SIGKILL)
        later = [pool.submit(speak, url, TEXT) for _ in range(4)]  # not started when it died
        outcomes = [stream.result() for stream in streams]
        session_outcomes = [session.result() for session in sessions]
        whole = [request.result() for request in later]
    kinds = [kind for kind, _ in outcomes]
    # The streams the dead replica was speaking: HTTP's end without the chunked body's end, a
    # WebSocket session's sentence with the error that says to send it again.
    assert "broken" in kinds or ("error", "engine_unavailable") in session_outcomes, (
        kinds,
        session_outcomes,
    )
    assert set(session_outcomes) <= {("complete", ""), ("error", "engine_unavailable")}, session_outcomes
    for kind, body in outcomes:
        if kind == "complete":  # a stream that ended cleanly holds all its speech
            assert transcribed_wer(transcribe, body, LONG) <= 0.10
    for body in whole:
        assert transcribed_wer(transcribe, body) <= 0.10
    # Serve starts a new replica: a replica id never seen before takes calls.
    deadline = time.monotonic() + 180
    while not set(engine_calls(url)) - before:
        assert time.monotonic() < deadline, f"no replacement replica: {engine_calls(url)}"
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda _: speak(url, "Hello there."), range(2)))
    assert len(replica_pids(cluster, "Engine", node=1)) == 1
    # The dead replica's figures are gone from /metrics (the router no longer knows it); the
    # replacement's are there. The dead one shared its node with the replacement.
    (replacement,) = set(engine_calls(url)) - before
    (dead,) = {key for key in before if key[0] == replacement[0]}
    deadline = time.monotonic() + 60
    while dead in (figures := replica_figures(url)) or replacement not in figures:
        assert time.monotonic() < deadline, f"figures {sorted(figures)}: dead {dead}, new {replacement}"
        time.sleep(0.2)
