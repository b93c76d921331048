"""Serve autoscaling of the engine deployment on a two-node cluster: one Piper replica at rest,
two under load (ongoing requests per replica past the target), one again once the load stops.
Short delays and metric intervals keep it to a minute or two."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("ray.serve", reason="Ray Serve is not installed (the cluster extra)")

from tests.e2e.test_cluster import engine_calls, wait_ready
from tests.support.ray_cluster import LocalCluster, local_cluster, replica_pids, serve_config, serve_run
from tests.support.server import free_port

pytestmark = pytest.mark.cluster

LONG = " ".join(f"Sentence number {n} is read aloud while the cluster grows." for n in range(8))
AUTOSCALING = {
    "min_replicas": 1,
    "initial_replicas": 1,
    "max_replicas": 2,
    "target_ongoing_requests": 1,
    "metrics_interval_s": 0.5,
    "look_back_period_s": 2,
    "upscale_delay_s": 1,
    "downscale_delay_s": 4,
}
# Serve's handles and replicas report ongoing requests every 10 s by default: faster here.
FAST_METRICS = {
    "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
}


def engine_replicas(cluster: LocalCluster) -> int:
    return sum(len(replica_pids(cluster, "Engine", node)) for node in (0, 1))


def wait_for(condition, timeout_s: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, f"timed out waiting for {what}"
        time.sleep(0.5)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def autoscaled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, str]]:
    ray_dir = Path(f"/tmp/ray-tts-{free_port()}")
    with local_cluster(ray_dir) as cluster:
        port = free_port()
        data = tmp_path_factory.mktemp("cluster-autoscale-data")
        config = serve_config(port, data, engine_replicas=None, extra_env=FAST_METRICS)
        for deployment in config["applications"][0]["deployments"]:  # type: ignore[index]
            if deployment["name"] == "Engine":
                deployment["autoscaling_config"] = AUTOSCALING
                deployment["graceful_shutdown_timeout_s"] = 2
                deployment["graceful_shutdown_wait_loop_s"] = 0.5
        serve_run(cluster, config, data / "serve.yaml")
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        yield cluster, url


def test_engine_replicas_scale_up_under_load_and_back_down(autoscaled: tuple[LocalCluster, str]) -> None:
    cluster, url = autoscaled
    assert httpx.post(f"{url}/api/tts", json={"text": "Hello."}, timeout=120).status_code == 200
    assert engine_replicas(cluster) == 1
    stop = threading.Event()
    failures: list[str] = []

    def load() -> None:
        while not stop.is_set():
            response = httpx.post(f"{url}/api/tts", json={"text": LONG}, timeout=120)
            if response.status_code != 200:
                failures.append(f"{response.status_code}: {response.text[:200]}")

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        loaders = [pool.submit(load) for _ in range(4)]
        try:
            up_s = wait_for(lambda: engine_replicas(cluster) == 2, 120, "a second engine replica")
            wait_for(lambda: len(engine_calls(url)) == 2, 120, "the second replica to take calls")
        finally:
            stop.set()
            for loader in loaders:
                loader.result(timeout=180)
    assert not failures, failures
    down_s = wait_for(lambda: engine_replicas(cluster) == 1, 120, "the scale-down to one replica")
    assert httpx.post(f"{url}/api/tts", json={"text": "Hello again."}, timeout=120).status_code == 200
    print(f"scaled up in {up_s:.1f}s under load, down in {down_s:.1f}s after it")
