"""OpenAI's speech API as other clients call it: pipecat's OpenAITTSService, livekit-plugins-openai
(tts-1 as audio, gpt-4o-mini-tts as SSE), and Open WebUI, which reads the model and voice listings
without its key. With API keys set, those listings answer a keyless reader with no library voice;
the compat doors of other servers' APIs take keys as every door does."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from livekit.agents import APIStatusError
from livekit.plugins import openai as livekit_openai
from pipecat.services.openai.tts import OpenAITTSService

from tests.conftest import COMPAT_XTTS_KEYS
from tests.service.test_audio_out_http import decode
from tests.support.audio import to_16k, word_error_rate
from tests.support.pipecat_run import pipecat_speech
from tests.support.server import isolated_settings, running_server

KEY = "openwebui-key-0123456789abcdef"
TEXT = "The meeting has moved to the small room on the second floor."


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(isolated_settings(tmp_path_factory.mktemp("keyed"), api_keys=KEY)) as url:
        yield url


def test_pipecat_openai_tts_service_speaks(piper_server: str, transcribe) -> None:  # type: ignore[no-untyped-def]
    samples, rate = pipecat_speech(
        lambda _session: OpenAITTSService(
            base_url=f"{piper_server}/v1",
            api_key="unused",
            settings=OpenAITTSService.Settings(model="tts-1", voice="alloy"),
        ),
        TEXT,
    )
    assert rate == 24000 and samples.size / rate > 2.0
    assert word_error_rate(TEXT, transcribe(to_16k(samples, rate))) <= 0.10


def livekit_speech(url: str, model: str, key: str) -> tuple[np.ndarray, int, set[str]]:
    """(samples, rate, content types the server answered with) of livekit's OpenAI TTS."""
    content_types: set[str] = set()

    async def seen(response: httpx.Response) -> None:
        content_types.add(response.headers.get("content-type", "").split(";")[0])

    async def run() -> tuple[np.ndarray, int]:
        http = httpx.AsyncClient(timeout=120, event_hooks={"response": [seen]})
        client = openai.AsyncClient(base_url=f"{url}/v1", api_key=key, max_retries=0, http_client=http)
        tts = livekit_openai.TTS(model=model, voice="nova", client=client)
        frames = []
        async with tts.synthesize(TEXT) as stream:
            async for event in stream:
                frames.append(event.frame)
        await tts.aclose()
        await client.close()
        assert {(frame.sample_rate, frame.num_channels) for frame in frames} == {(24000, 1)}
        return np.concatenate([np.frombuffer(frame.data, dtype=np.int16) for frame in frames]), 24000

    samples, rate = asyncio.run(run())
    return samples, rate, content_types


@pytest.mark.parametrize(
    ("model", "content_type"), [("tts-1", "audio/mpeg"), ("gpt-4o-mini-tts", "text/event-stream")]
)
def test_livekit_openai_tts_without_and_with_a_key(
    piper_server: str, keyed_server: str, model: str, content_type: str, transcribe
) -> None:  # type: ignore[no-untyped-def]
    for url, key in ((piper_server, "unused"), (keyed_server, KEY)):
        samples, rate, answered = livekit_speech(url, model, key)
        assert answered == {content_type}
        assert word_error_rate(TEXT, transcribe(to_16k(samples, rate))) <= 0.10, (url, model)
    with pytest.raises(APIStatusError) as refused:
        livekit_speech(keyed_server, model, "wrong-key")
    assert refused.value.status_code == 401


def test_open_webui_lists_without_its_key_and_speaks_with_it(keyed_server: str, transcribe) -> None:  # type: ignore[no-untyped-def]
    base = f"{keyed_server}/v1"
    # What Open WebUI's get_available_models / get_available_voices send: no Authorization.
    models = httpx.get(f"{base}/audio/models", timeout=30)
    assert models.status_code == 200 and {"id": "tts-1"} in models.json()["models"]
    assert httpx.get(f"{base}/models", timeout=30).json()["data"][0]["object"] == "model"
    assert httpx.get(f"{base}/models/tts-1", timeout=30).status_code == 200
    voices = httpx.get(f"{base}/audio/voices", timeout=30)
    assert voices.status_code == 200
    listed = {voice["id"]: voice["name"] for voice in voices.json()["voices"]}
    assert listed["alloy"] == "alloy (en_US-joe-medium)" and "en_US-joe-medium" in listed
    # A wrong key presented is still refused; speech needs the key, as Open WebUI sends it.
    assert httpx.get(f"{base}/audio/voices", headers={"Authorization": "Bearer nope"}).status_code == 401
    body = {"input": TEXT, "voice": "alloy", "model": "tts-1"}
    assert httpx.post(f"{base}/audio/speech", json=body, timeout=120).status_code == 401
    speech = httpx.post(
        f"{base}/audio/speech", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=120
    )
    assert speech.status_code == 200 and speech.headers["content-type"] == "audio/mpeg"
    samples, rate, _ = decode(speech.content, "mp3", 0)
    assert word_error_rate(TEXT, transcribe(to_16k(samples, rate))) <= 0.10


def test_the_listings_can_require_a_key(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path, api_keys=KEY, openai_listings_require_key=True)
    with running_server(settings) as url:
        for path in ("/v1/audio/models", "/v1/audio/voices", "/v1/models"):
            assert httpx.get(url + path, timeout=30).status_code == 401, path
            assert httpx.get(url + path, headers={"X-API-Key": KEY}, timeout=30).status_code == 200


def test_keyless_listings_reveal_no_library_voice(compat_xtts_server: str, reference_wav: Path) -> None:
    alpha, beta = ({"Authorization": f"Bearer {key}"} for key in COMPAT_XTTS_KEYS)
    made = httpx.post(
        f"{compat_xtts_server}/api/voices",
        headers=alpha,
        data={"name": "Alpha Private Voice"},
        files=[("files", ("me.wav", reference_wav.read_bytes(), "audio/wav"))],
        timeout=300,
    )
    assert made.status_code == 201, made.text
    voice_id = made.json()["id"]

    def names(response: httpx.Response) -> set[str]:
        assert response.status_code == 200, response.text
        return {text for voice in response.json()["voices"] for text in (voice["id"], voice["name"])}

    openai_voices = f"{compat_xtts_server}/v1/audio/voices"
    assert {voice_id, "Alpha Private Voice"} <= names(httpx.get(openai_voices, headers=alpha, timeout=30))
    for headers in ({}, beta):
        assert not {voice_id, "Alpha Private Voice"} & names(
            httpx.get(openai_voices, headers=headers, timeout=30)
        )
    # The same on the xtts-api door's listings (a key is needed there).
    speakers = f"{compat_xtts_server}/xtts-api/speakers"
    ids = lambda headers: {s["voice_id"] for s in httpx.get(speakers, headers=headers, timeout=30).json()}  # noqa: E731
    assert voice_id in ids(alpha) and voice_id not in ids(beta)


def test_api_keys_apply_to_the_other_servers_doors(keyed_server: str) -> None:
    calls = (
        ("POST", "/", {"json": {"text": "Hello."}}),
        ("POST", "/synthesize", {"json": {"text": "Hello."}}),
        ("GET", "/xtts-api/speakers", {}),
        ("GET", "/xtts-api/tts_stream", {"params": {"text": "Hello."}}),
        ("GET", "/xtts-streaming/studio_speakers", {}),
        ("GET", "/xtts-streaming/languages", {}),
    )
    for method, path, options in calls:
        refused = httpx.request(method, keyed_server + path, timeout=60, **options)  # type: ignore[arg-type]
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key", path
        allowed = httpx.request(
            method, keyed_server + path, headers={"X-API-Key": KEY}, timeout=60, **options
        )  # type: ignore[arg-type]
        assert allowed.status_code == 200, (path, allowed.text)
