"""Redeploying the service on a two-node Ray Serve cluster while clients keep speaking to it,
and the gRPC and Wyoming doors beside the ingress.

A changed config makes Serve replace replicas one at a time (a rolling update): each old
replica is sent no new request, finishes those it has, then stops. No request sent during the
update may be refused or cut: every one ends with whole audio of about the usual length. One
cluster serves every test here (a cluster start costs minutes): gRPC first, then an update of the
engine replicas alone, then one of the whole application (runtime_env), after which gRPC is
called again on the new ingress (the old one let its port go)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.tts import Synthesize, SynthesizeVoice

pytest.importorskip("ray.serve", reason="Ray Serve is not installed (the cluster extra)")

from sentiric_tts.doors.grpc.contract import SERVICE_NAME, pb
from tests.e2e.test_cluster import engine_calls, wait_for_replicas, wait_ready
from tests.e2e.test_cluster_autoscaling import wait_for
from tests.e2e.test_wyoming import ONE_SHOT, VOICE, heard, reply, types
from tests.support.audio import parse_wav, pcm16, to_16k, to_float, word_error_rate
from tests.support.broken_voice import BROKEN_VOICE, add_broken_voice
from tests.support.grpc_client import joined_audio, refusal, run, stub
from tests.support.ray_cluster import LocalCluster, local_cluster, replica_pids, serve_config, serve_run
from tests.support.rolling_load import TELEPHONY, TEXT, Load
from tests.support.server import free_port

pytestmark = pytest.mark.cluster

GRPC_TEXT = "Thank you for calling the city library. Our opening hours are nine to five."
CLIENTS = 3  # HTTP clients; one gRPC client besides


@dataclass
class Deployment:
    cluster: LocalCluster
    url: str
    grpc_target: str
    wyoming_port: int
    config: dict[str, Any]
    config_path: Path

    def redeploy(self, change: Callable[[dict[str, Any]], None]) -> None:
        """`serve run` again with a changed copy of the config: Serve updates the application."""
        config = copy.deepcopy(self.config)
        change(config)
        serve_run(self.cluster, config, self.config_path)
        self.config = config


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    ray_dir = Path(f"/tmp/ray-tts-{free_port()}")  # short: Ray's socket paths have a length limit
    with local_cluster(ray_dir) as cluster:
        port, grpc_port, wyoming_port = free_port(), free_port(), free_port()
        data = tmp_path_factory.mktemp("cluster-rollout-data")
        beside = {
            "TTS_GRPC_ENABLED": "true",
            "TTS_GRPC_HOST": "127.0.0.1",
            "TTS_GRPC_PORT": str(grpc_port),
            "TTS_WYOMING_ENABLED": "true",
            "TTS_WYOMING_HOST": "127.0.0.1",
            "TTS_WYOMING_PORT": str(wyoming_port),
        }
        config = serve_config(port, data, extra_env=beside)
        serve_run(cluster, config, data / "serve.yaml")
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        wait_for_replicas(url, 2)
        yield Deployment(cluster, url, f"127.0.0.1:{grpc_port}", wyoming_port, config, data / "serve.yaml")


# --- gRPC beside the ingress ---


async def grpc_stream(target: str, **fields: Any) -> list[pb.CoquiSynthesizeStreamResponse]:
    async with grpc.aio.insecure_channel(target) as channel:
        call = stub(channel).CoquiSynthesizeStream(
            pb.CoquiSynthesizeStreamRequest(**fields), timeout=180, wait_for_ready=True
        )
        return [message async for message in call]


async def grpc_health(target: str) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        return int((await check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=30)).status)


def grpc_heard(target: str, transcribe: Callable[[Any], str]) -> float:
    """Word error rate of a streamed gRPC synthesis of GRPC_TEXT (16 kHz PCM)."""
    messages = run(lambda: grpc_stream(target, text=GRPC_TEXT, language_code="en", **TELEPHONY))
    assert len(messages) > 2  # audio in pieces, then the final message
    audio = joined_audio(messages)
    return word_error_rate(GRPC_TEXT, transcribe(to_16k(to_float(pcm16(audio)), 16000)))


def test_grpc_beside_the_ingress_streams_speech_and_maps_failures(
    deployment: Deployment, transcribe: Callable[[Any], str]
) -> None:
    target = deployment.grpc_target
    before = sum(engine_calls(deployment.url).values())
    assert grpc_heard(target, transcribe) <= 0.15
    assert sum(engine_calls(deployment.url).values()) > before  # spoken by the engine replicas
    assert run(lambda: grpc_health(target)) == health_pb2.HealthCheckResponse.SERVING
    # As on one machine: an unknown voice is the caller's mistake, said before any audio.
    error = refusal(lambda: grpc_stream(target, text="Hi.", voice="nobody"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    assert "Unknown voice 'nobody'" in error.details(), error.details()


# --- Wyoming beside the ingress ---


def test_wyoming_beside_the_ingress_speaks_as_home_assistant_asks(
    deployment: Deployment, transcribe: Callable[[Any], str]
) -> None:
    async def speak(voice: str) -> list[Any]:
        async with AsyncTcpClient("127.0.0.1", deployment.wyoming_port) as client:
            await client.write_event(Synthesize(ONE_SHOT, voice=SynthesizeVoice(name=voice)).event())
            return await reply(client)

    before = sum(engine_calls(deployment.url).values())
    events = run(lambda: asyncio.wait_for(speak(VOICE), 120))
    assert types(events) == ["audio-start", "audio-chunk", "audio-stop"]
    assert word_error_rate(ONE_SHOT, heard(events, transcribe)) <= 0.10
    assert sum(engine_calls(deployment.url).values()) > before  # spoken by the engine replicas
    (refused,) = run(lambda: asyncio.wait_for(speak("nobody"), 120))
    assert Error.from_event(refused).code == "unknown_voice", refused


# --- rolling updates under load ---


def replica_processes(cluster: LocalCluster, name: str) -> set[int]:
    return {pid for node in (0, 1) for pid in replica_pids(cluster, name, node)}


def new_engine_replicas(url: str, old: set[tuple[str, str]]) -> int:
    try:
        return len(set(engine_calls(url)) - old)
    except httpx.HTTPError:  # no ingress up yet
        return 0


def rolled_under_load(
    deployment: Deployment, change: Callable[[dict[str, Any]], None], replaced: tuple[str, ...]
) -> tuple[Load, set[tuple[str, str]], dict[tuple[str, str], float]]:
    """Redeploy with `change` while the clients speak; wait until every replica of the
    `replaced` deployments is a new process and two new engine replicas took calls; let every
    client finish requests after that, then stop. Returns the load, the engine replicas
    (node, id) seen before and the ingress's engine calls when the update was done."""
    url, cluster = deployment.url, deployment.cluster
    old_calls = set(engine_calls(url))
    old_processes = {name: replica_processes(cluster, name) for name in replaced}
    assert all(old_processes.values()), old_processes
    load = Load(url, deployment.grpc_target)
    with concurrent.futures.ThreadPoolExecutor(CLIENTS + 1) as pool:
        clients = [pool.submit(load.http_client, n) for n in range(CLIENTS)]
        clients.append(pool.submit(load.grpc_client))
        try:
            wait_for(
                lambda: (
                    len(load.ended_in(0)) - len(load.ended_in(0, "grpc")) >= CLIENTS
                    and load.ended_in(0, "grpc")
                ),
                180,
                "requests before the update",
            )
            load.phase = 1
            deployment.redeploy(change)
            for name, processes in old_processes.items():
                wait_for(
                    lambda name=name, processes=processes: not replica_processes(cluster, name) & processes,
                    600,
                    f"the old {name} replicas to stop",
                )
            wait_ready(url, 600)
            wait_for(lambda: new_engine_replicas(url, old_calls) >= 2, 300, "two new engine replicas")
            load.phase = 2
            at_update_end = engine_calls(url)
            wait_for(
                lambda: len(load.ended_in(2)) >= 2 * CLIENTS and any(o.ok for o in load.ended_in(2, "grpc")),
                300,
                "requests after the update",
            )
        finally:
            load.stop.set()
            for client in clients:
                client.result(timeout=600)
    summary = {
        (door, phase): len(load.ended_in(phase, door))
        for door in {o.door for o in load.outcomes}
        for phase in (0, 1, 2)
    }
    refused = sum(o.refused for o in load.outcomes)
    print(f"requests by door and phase they ended in: {summary}; gRPC calls refused: {refused}")
    return load, old_calls, at_update_end


def assert_every_request_whole(load: Load, transcribe: Callable[[Any], str], grpc_refusals: bool) -> None:
    """Every HTTP request 200 with whole audio of about the usual length; every gRPC call too,
    or (`grpc_refusals`: its ingress was replaced) refused with UNAVAILABLE before any audio."""
    failed = [o for o in load.outcomes if not o.ok and not (grpc_refusals and o.refused)]
    assert not failed, f"{len(failed)} of {len(load.outcomes)} requests failed: {failed}"
    done = [o for o in load.outcomes if o.ok]
    during = [o for o in done if o.phase_started <= 1 <= o.phase_ended]
    assert len(during) >= CLIENTS, [(o.door, o.phase_started, o.phase_ended) for o in load.outcomes]
    # Whole audio of about the length the same text had before the update.
    before = sorted(o.duration_s() for o in done if o.phase_ended == 0)
    usual = before[len(before) // 2]
    lengths = [(o.door, round(o.duration_s(), 2)) for o in done]
    assert all(0.75 * usual <= length <= 1.33 * usual for _, length in lengths), (usual, lengths)
    # And what was said during the update is the text.
    for outcome in [o for o in during if o.door != "grpc"][:2]:
        rate, _, samples = parse_wav(outcome.body)
        assert word_error_rate(TEXT, transcribe(to_16k(samples, rate))) <= 0.15
    for outcome in [o for o in during if o.door == "grpc"][:1]:
        heard = transcribe(to_16k(to_float(pcm16(outcome.body)), TELEPHONY["sample_rate"]))
        assert word_error_rate(TEXT, heard) <= 0.15, heard


def test_a_rolling_update_of_the_engine_replicas_drops_no_request(
    deployment: Deployment, transcribe: Callable[[Any], str]
) -> None:
    def engine_options(config: dict[str, Any]) -> None:
        for deployment_config in config["applications"][0]["deployments"]:
            if deployment_config["name"] == "Engine":  # a new actor option: Serve restarts them
                deployment_config["ray_actor_options"]["memory"] = 256 * 1024 * 1024

    ingress = replica_processes(deployment.cluster, "Ingress")
    load, old, at_update_end = rolled_under_load(deployment, engine_options, ("Engine",))
    assert_every_request_whole(load, transcribe, grpc_refusals=False)
    assert replica_processes(deployment.cluster, "Ingress") == ingress  # the ingress stayed
    # Requests after the update went to the new engine replicas only.
    after = engine_calls(deployment.url)
    served = {key for key, count in after.items() if count > at_update_end.get(key, 0)}
    assert served and not served & old, (old, at_update_end, after)


def test_a_rolling_update_of_the_whole_application_drops_no_request_and_grpc_moves_along(
    deployment: Deployment, transcribe: Callable[[Any], str]
) -> None:
    def settings_changed(config: dict[str, Any]) -> None:  # runtime_env: every replica restarts
        config["applications"][0]["runtime_env"]["env_vars"]["TTS_LOG_LEVEL"] = "WARNING"

    load, old, _ = rolled_under_load(deployment, settings_changed, ("Ingress", "Engine"))
    # gRPC calls are the ingress process's own (Serve neither counts nor holds them): a call the
    # old ingress took runs to its end; one it is sent while shutting down is refused
    # UNAVAILABLE, and the client's next call reaches the new ingress on the same port.
    assert_every_request_whole(load, transcribe, grpc_refusals=True)
    # A new ingress: its /metrics counts the new engine replicas only.
    after = engine_calls(deployment.url)
    assert len(after) == 2 and not set(after) & old, (old, after)
    assert grpc_heard(deployment.grpc_target, transcribe) <= 0.15


# --- an engine-only update to another engine ---


def test_an_engine_only_update_to_another_engine_replaces_the_stale_ingress(
    deployment: Deployment, tmp_path: Path
) -> None:
    """The Engine deployment alone gets another engine (here: one more voice, from its own data
    folder). The ingress was built for the old one: requests the new replicas refuse are answered
    `503 engine_unavailable` (never another engine's audio), the ingress's health check fails,
    and Serve replaces it with one that lists the new voice and speaks."""
    engine_data = tmp_path / "engine-data"
    add_broken_voice(engine_data)  # a voice that loads (and fails if used): another voice list

    def engine_data_dir(config: dict[str, Any]) -> None:
        for deployment_config in config["applications"][0]["deployments"]:
            if deployment_config["name"] == "Engine":  # env vars merge over the application's
                options = deployment_config["ray_actor_options"]
                options["runtime_env"] = {"env_vars": {"TTS_DATA_DIR": str(engine_data)}}

    ingress = replica_processes(deployment.cluster, "Ingress")
    deployment.redeploy(engine_data_dir)
    answers: list[tuple[int, str]] = []

    def listed_and_spoken() -> bool:
        response = httpx.post(f"{deployment.url}/api/tts", json={"text": TEXT}, timeout=120)
        try:
            code = "" if response.status_code == 200 else str(response.json()["error"]["code"])
        except (ValueError, KeyError, TypeError):  # not the service's own error body
            code = f"other: {response.text[:80]}"
        answers.append((response.status_code, code))
        if response.status_code != 200:
            return False
        voices = httpx.get(f"{deployment.url}/api/voices", timeout=30).json()["voices"]
        return BROKEN_VOICE in {voice["id"] for voice in voices}

    wait_for(listed_and_spoken, 300, "a new ingress listing the new engine's voices")
    assert set(answers) <= {(200, ""), (503, "engine_unavailable")}, answers
    assert replica_processes(deployment.cluster, "Ingress").isdisjoint(ingress)
