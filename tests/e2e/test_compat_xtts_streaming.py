"""Coqui xtts-streaming-server's API under /xtts-streaming: pipecat's XTTSService on Piper (the
studio speakers' vectors stand for its voices), and the latents used as given on XTTS (the tiny
random checkpoint: its speech is noise, so only shapes and the voice used are checked there)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from pipecat.services.xtts.tts import XTTSService

from sentiric_tts.doors.http.body_limits import BodyLimits
from sentiric_tts.settings import Settings
from tests.conftest import COMPAT_XTTS_KEYS
from tests.support.audio import parse_wav, pcm16, to_16k, word_error_rate
from tests.support.pipecat_run import pipecat_speech
from tests.support.random_xtts import SPEAKER_NAMES

BASE = "/xtts-streaming"
VOICE = "en_US-joe-medium"
TEXT = "Your table is booked for tonight, right next to the big window."


@pytest.fixture()
def streaming(piper_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=piper_server + BASE, timeout=120) as client:
        yield client


@pytest.fixture()
def xtts(compat_xtts_server: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {COMPAT_XTTS_KEYS[0]}"}
    with httpx.Client(base_url=compat_xtts_server + BASE, headers=headers, timeout=300) as client:
        yield client


def test_pipecat_xtts_service_speaks_with_a_piper_voice(piper_server: str, transcribe) -> None:  # type: ignore[no-untyped-def]
    samples, rate = pipecat_speech(
        lambda session: XTTSService(
            base_url=piper_server + BASE,
            aiohttp_session=session,
            settings=XTTSService.Settings(voice=VOICE),
        ),
        TEXT,
    )
    assert samples.size / rate > 2.0
    # XTTSService strips the periods before it sends the text.
    assert word_error_rate(TEXT, transcribe(to_16k(samples, rate))) <= 0.10


def test_piper_voices_have_distinct_vectors_that_map_back(streaming: httpx.Client) -> None:
    speakers = streaming.get("/studio_speakers").json()
    assert list(speakers) == [VOICE]
    vectors = speakers[VOICE]
    assert len(vectors["speaker_embedding"]) == 512
    assert [len(row) for row in vectors["gpt_cond_latent"]] == [1024]
    assert streaming.get("/studio_speakers").json() == speakers  # deterministic
    assert streaming.get("/languages").json() == ["en"]

    body = {"text": "Hello there.", "language": "en", **vectors}
    raw = streaming.post("/tts_stream", json={**body, "add_wav_header": False, "stream_chunk_size": "20"})
    assert raw.status_code == 200 and raw.headers["x-voice"] == VOICE
    assert raw.headers["x-sample-rate"] == "24000" and raw.content[:4] != b"RIFF"
    wav = streaming.post("/tts_stream", json={**body, "stream_chunk_size": 20})  # add_wav_header: true
    rate, _, samples = parse_wav(wav.content)
    assert rate == 24000 and samples.size == pytest.approx(pcm16(raw.content).size, rel=0.1)

    # /tts: a JSON string holding a base64 WAV. Rounded (float16) values still map back.
    rounded = {
        key: np.round(np.asarray(value, dtype=np.float32), 3).tolist() for key, value in vectors.items()
    }
    whole = streaming.post("/tts", json={"text": "Hello there.", "language": "en", **rounded})
    assert whole.status_code == 200 and whole.headers["content-type"] == "application/json"
    decoded = base64.b64decode(whole.json())
    assert parse_wav(decoded)[0] == 24000 and decoded[:4] == b"RIFF"


def test_bad_input_gets_a_clear_4xx(streaming: httpx.Client) -> None:
    vectors = streaming.get("/studio_speakers").json()[VOICE]
    body = {"text": "Hello.", "language": "en", **vectors}

    def refused(response: httpx.Response, status: int, code: str) -> None:
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
        assert response.json()["detail"] == response.json()["error"]["message"]

    stranger = np.random.default_rng(7).standard_normal(512).tolist()
    refused(streaming.post("/tts_stream", json={**body, "speaker_embedding": stranger}), 404, "unknown_voice")
    refused(streaming.post("/tts", json={**body, "speaker_embedding": [0.1] * 3}), 422, "invalid_latents")
    refused(streaming.post("/tts_stream", json={**body, "text": " "}), 422, "empty_text")
    refused(streaming.post("/tts_stream", json={**body, "language": "xx"}), 422, "unsupported_language")
    refused(streaming.post("/tts_stream", json={**body, "stream_chunk_size": "lots"}), 422, "invalid_request")
    refused(
        streaming.post("/tts_stream", json={**body, "speaker_embedding": "alloy"}), 422, "invalid_request"
    )
    refused(streaming.post("/tts", json={"text": "Hello."}), 422, "invalid_request")
    clip = ("voice.wav", b"RIFF0000WAVE", "audio/wav")
    refused(streaming.post("/clone_speaker", files={"wav_file": clip}), 409, "cloning_unavailable")
    assert streaming.post("/tts", json=body).status_code == 200  # still up


def test_on_xtts_the_latents_are_used_as_given(xtts: httpx.Client, reference_wav: Path) -> None:
    speakers = xtts.get("/studio_speakers").json()
    assert sorted(speakers) == sorted(SPEAKER_NAMES)
    studio = speakers[SPEAKER_NAMES[0]]
    assert len(studio["speaker_embedding"]) == 512
    width = len(studio["gpt_cond_latent"][0])  # the tiny model's: 128
    assert len(studio["gpt_cond_latent"]) == 32 and width == 128

    cloned = xtts.post(
        "/clone_speaker", files={"wav_file": ("me.wav", reference_wav.read_bytes(), "audio/wav")}
    )
    assert cloned.status_code == 200, cloned.text
    latents = cloned.json()
    assert len(latents["speaker_embedding"]) == 512
    assert {len(row) for row in latents["gpt_cond_latent"]} == {width}

    for vectors in (studio, latents):
        body = {"text": "Hello there.", "language": "en", **vectors, "add_wav_header": False}
        response = xtts.post("/tts_stream", json=body)
        assert response.status_code == 200, response.text
        assert response.headers["x-voice"].startswith("latents-")  # spoken with them, not a name
        assert response.headers["x-sample-rate"] == "24000" and len(response.content) > 2400
    flat = {**latents, "gpt_cond_latent": [x for row in latents["gpt_cond_latent"] for x in row]}
    whole = xtts.post("/tts", json={"text": "Hello there.", "language": "en", **flat})
    assert whole.status_code == 200 and base64.b64decode(whole.json())[:4] == b"RIFF"

    ragged = {**studio, "gpt_cond_latent": [[0.1] * width, [0.1] * 5]}
    for wrong in (
        {**studio, "gpt_cond_latent": [[0.1] * 1000]},
        ragged,
        {**studio, "speaker_embedding": [0.1] * 7},
    ):
        response = xtts.post("/tts", json={"text": "Hello.", "language": "en", **wrong})
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_latents", (
            response.text
        )
    anonymous = httpx.get(str(xtts.base_url).rstrip("/") + "/languages", timeout=30)
    assert anonymous.status_code == 401


def test_a_body_with_full_size_xtts_latents_is_taken(streaming: httpx.Client) -> None:
    """XTTS v2's latents (32 x 1024 numbers) are far over a text body's limit; these routes take them."""
    vectors = streaming.get("/studio_speakers").json()[VOICE]
    latents = np.random.default_rng(3).standard_normal((32, 1024)).astype(np.float32).astype(float).tolist()
    body = {"text": "Hello.", "language": "en", "speaker_embedding": vectors["speaker_embedding"]}
    content = json.dumps({**body, "gpt_cond_latent": latents}).encode()
    assert len(content) > BodyLimits.from_settings(Settings(_env_file=None)).json_bytes  # type: ignore[call-arg]
    for path in ("/tts_stream", "/tts"):
        response = streaming.post(path, content=content, headers={"content-type": "application/json"})
        assert response.status_code == 200, response.text
    oversized = json.dumps({**body, "gpt_cond_latent": latents * 10}).encode()
    refused = streaming.post("/tts", content=oversized, headers={"content-type": "application/json"})
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "body_too_large"
