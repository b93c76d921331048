"""A real local Ray cluster of two nodes, for the cluster tests and benchmark.

Each `ray start` runs in a new session, and teardown ends that session's processes (Ray's
daemons and workers) by their ids: `ray stop --force` would end every Ray process on the
machine, other people's clusters included."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import yaml

from sentiric_tts.cluster.command import CONFIG
from tests.support.server import free_port

_BIN = Path(sys.executable).parent
_REPO = Path(__file__).resolve().parents[2]


@dataclass
class LocalCluster:
    address: str
    env: dict[str, str]
    sessions: list[int]


def cluster_env() -> dict[str, str]:
    """The environment of every Ray process: this checkout's code first, no telemetry."""
    path = os.pathsep.join([str(_REPO / "src"), str(_REPO), os.environ.get("PYTHONPATH", "")])
    return {
        **os.environ,
        "PYTHONPATH": path.rstrip(os.pathsep),
        "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1",
    }


def _session_pids(session: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # stat's 6th field: the session id
            pids.append(int(entry.name))
    return pids


def _end_sessions(sessions: list[int]) -> None:
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        for session in sessions:
            for pid in _session_pids(session):
                with suppress(ProcessLookupError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while any(_session_pids(s) for s in sessions) and time.monotonic() < deadline:
            time.sleep(0.1)


def _ray_start(args: list[str], env: dict[str, str], sessions: list[int]) -> None:
    process = subprocess.Popen(
        [str(_BIN / "ray"), "start", "--disable-usage-stats", *args],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sessions.append(process.pid)
    output, _ = process.communicate(timeout=180)
    if process.returncode != 0:
        raise RuntimeError(f"ray start failed:\n{output}")


@contextmanager
def local_cluster(temp_dir: Path, head_cpus: int = 2, worker_cpus: int = 1) -> Iterator[LocalCluster]:
    """A head node (`node_a`) and a worker node (`node_b`) on this machine; always torn down."""
    env = cluster_env()
    port = free_port()
    sessions: list[int] = []
    common = ["--object-store-memory", str(150 * 1024 * 1024)]
    try:
        _ray_start(
            [
                "--head",
                f"--port={port}",
                f"--num-cpus={head_cpus}",
                "--resources",
                json.dumps({"node_a": 1}),
                "--include-dashboard=false",
                f"--temp-dir={temp_dir}",
                *common,
            ],
            env,
            sessions,
        )
        _ray_start(
            [
                f"--address=127.0.0.1:{port}",
                f"--num-cpus={worker_cpus}",
                "--resources",
                json.dumps({"node_b": 1}),
                *common,
            ],
            env,
            sessions,
        )
        yield LocalCluster(f"127.0.0.1:{port}", env, sessions)
    finally:
        _end_sessions(sessions)
        shutil.rmtree(temp_dir, ignore_errors=True)


def replica_pids(cluster: LocalCluster, deployment: str, node: int) -> list[int]:
    """Processes of `deployment`'s replicas on the cluster's `node`-th node (0: the head)."""
    pids = []
    for pid in _session_pids(cluster.sessions[node]):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"ServeReplica:sentiric-tts:{deployment}" in title:
            pids.append(pid)
    return pids


def serve_config(
    http_port: int, data_dir: Path, engine_replicas: int | None = 2, extra_env: dict[str, str] | None = None
) -> dict[str, object]:
    """The shipped serve.yaml, on loopback, one proxy, engines one per node (a fixed count, or
    its autoscaling when `engine_replicas` is None), with test settings."""
    config = yaml.safe_load(CONFIG.read_text())
    config["proxy_location"] = "HeadOnly"  # one HTTP port on this one machine
    config["http_options"] = {"host": "127.0.0.1", "port": http_port}
    application = config["applications"][0]
    application["runtime_env"]["env_vars"].update(
        {
            "TTS_DATA_DIR": str(data_dir),
            "TTS_ENGINE_WORKERS": "1",  # one CPU per engine replica
            "TTS_PIPER_THREADS": "1",
            "TTS_PIPER_LONE_CALL_THREADS": "1",
            **(extra_env or {}),
        }
    )
    for deployment in application["deployments"]:
        if deployment["name"] == "Ingress":
            deployment["ray_actor_options"] = {"num_cpus": 1, "resources": {"node_a": 0.01}}
        if deployment["name"] == "Engine":
            deployment["max_replicas_per_node"] = 1
            if engine_replicas is not None:
                deployment.pop("autoscaling_config", None)
                deployment["num_replicas"] = engine_replicas
    return config


def serve_run(cluster: LocalCluster, config: dict[str, object], path: Path) -> None:
    """`sentiric-tts cluster run --config` (serve run, non-blocking) onto the cluster."""
    path.write_text(yaml.safe_dump(config))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "sentiric_tts",
            "cluster",
            "run",
            "--config",
            str(path),
            "--address",
            cluster.address,
        ],
        env=cluster.env,
        check=True,
        timeout=300,
    )
