"""The service on a real two-node Ray Serve cluster (sentiric_tts/cluster/): Piper engine
replicas on different nodes, every request through the ingress's HTTP doors."""

from __future__ import annotations

import concurrent.futures
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytest.importorskip("ray.serve", reason="Ray Serve is not installed (the cluster extra)")

from tests.support.audio import parse_wav, to_16k, word_error_rate
from tests.support.ray_cluster import LocalCluster, local_cluster, serve_config, serve_run
from tests.support.server import free_port

pytestmark = pytest.mark.cluster

TEXT = "The quick brown fox jumps over the lazy dog near the river bank."
_CALLS = re.compile(r'^tts_cluster_engine_calls_total\{node="([^"]+)",replica="([^"]+)"\} ([0-9.e+]+)$', re.M)


@dataclass
class Deployed:
    cluster: LocalCluster
    url: str


def engine_calls(url: str) -> dict[tuple[str, str], float]:
    """(node, replica) -> text segments it took, from the ingress's /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {(node, replica): float(count) for node, replica, count in _CALLS.findall(text)}


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


def test_two_engine_replicas_on_two_nodes_speak_through_every_http_door(deployed: Deployed, transcribe) -> None:  # type: ignore[no-untyped-def]
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
        with httpx.stream("POST", f"{url}/api/tts/stream", json={"text": TEXT}, timeout=120) as response:
            assert response.status_code == 200
            return b"".join(response.iter_bytes())

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda job: job[0](job[1]), [(door, n) for door in (whole, openai, streamed) for n in range(2)]))
    for body in bodies:
        assert transcribed_wer(transcribe, body) <= 0.10
    after = engine_calls(url)
    served = {key for key, count in after.items() if count > before.get(key, 0)}
    assert len(served) == 2, f"calls per replica: before {before}, after {after}"
