"""The OpenAI-compatible door, driven by the official `openai` Python package."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from sentiric_tts.synthesis.language_id import LanguageDetector
from tests.service.test_audio_out_http import decode
from tests.service.test_xtts_http import xtts_settings
from tests.support.audio import to_16k, word_error_rate
from tests.support.random_xtts import SPEAKER_NAMES, XTTS_LANGUAGES
from tests.support.server import isolated_settings, running_server

TEXT = "Your order has shipped. It will arrive on Friday morning."


@pytest.fixture()
def oai(piper_server: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{piper_server}/v1", api_key="unused", max_retries=0, timeout=120) as client:
        yield client


def speech(client: openai.OpenAI, **kwargs: object) -> bytes:
    response = client.audio.speech.create(
        model=kwargs.pop("model", "tts-1"), voice=kwargs.pop("voice", "alloy"), input=TEXT, **kwargs
    )
    return response.content


@pytest.mark.parametrize("response_format", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_every_openai_format_decodes_to_the_words(
    oai: openai.OpenAI, transcribe, response_format: str
) -> None:  # type: ignore[no-untyped-def]
    data = speech(oai, response_format=response_format)
    # OpenAI's pcm is raw 24 kHz s16le; clients play it at that rate without being told.
    samples, rate, channels = decode(data, response_format, 24000)
    assert channels == 1
    if response_format == "pcm":
        assert len(data) % 2 == 0
        assert rate == 24000
    assert samples.size / rate > 1.5
    assert word_error_rate(TEXT, transcribe(to_16k(samples, rate))) <= 0.2


def test_mp3_is_the_default_and_openai_voice_names_work(oai: openai.OpenAI) -> None:
    for voice in ("alloy", "echo", "fable", "onyx", "nova", "shimmer"):
        raw = oai.audio.speech.with_raw_response.create(model="tts-1", voice=voice, input="Hello.")
        assert raw.headers["content-type"] == "audio/mpeg"
        # Piper has one voice: every OpenAI name speaks with it.
        assert raw.headers["x-voice"] == "en_US-joe-medium"
        samples, rate, _ = decode(raw.content, "mp3", 0)
        assert samples.size / rate > 0.3


def test_streaming_response_arrives_in_pieces(oai: openai.OpenAI, transcribe) -> None:  # type: ignore[no-untyped-def]
    long_text = " ".join([TEXT] * 4)
    with oai.audio.speech.with_streaming_response.create(
        model="tts-1-hd", voice="nova", input=long_text, response_format="pcm"
    ) as response:
        assert response.headers.get("transfer-encoding") == "chunked"
        pieces = [piece for piece in response.iter_bytes() if piece]
    assert len(pieces) > 1
    samples, rate, _ = decode(b"".join(pieces), "pcm", 24000)
    assert word_error_rate(long_text, transcribe(to_16k(samples, rate))) <= 0.2


def test_sse_stream_format_sends_base64_deltas_then_done(piper_server: str) -> None:
    body = {
        "model": "gpt-4o-mini-tts",
        "voice": "coral",
        "input": TEXT,
        "response_format": "wav",
        "stream_format": "sse",
    }
    events: list[dict[str, object]] = []
    with httpx.stream("POST", f"{piper_server}/v1/audio/speech", json=body, timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    deltas = [event for event in events if event["type"] == "speech.audio.delta"]
    assert len(deltas) > 1
    assert events[-1]["type"] == "speech.audio.done"
    assert events[-1]["usage"]["input_tokens"] == len(TEXT)  # type: ignore[index]
    audio = b"".join(base64.b64decode(str(event["audio"])) for event in deltas)
    samples, rate, _ = decode(audio, "wav", 0)
    assert samples.size / rate > 1.5


def test_our_extra_fields_go_in_the_body(oai: openai.OpenAI) -> None:
    raw = oai.audio.speech.with_raw_response.create(
        model="tts-1",
        voice="en_US-joe-medium",
        input=TEXT,
        response_format="pcm",
        speed=1.5,
        extra_body={"sample_rate": 8000, "language": "en", "volume_gain_db": -3.0},
    )
    assert raw.headers["x-sample-rate"] == "8000"
    assert raw.headers["x-language"] == "en"
    fast = len(raw.content) / 2 / 8000
    normal = len(speech(oai, response_format="pcm", extra_body={"sample_rate": 8000})) / 2 / 8000
    assert fast < normal * 0.8
    # instructions are accepted (the engines have no instruction control)
    assert speech(oai, response_format="wav", instructions="Speak cheerfully.")[:4] == b"RIFF"


def test_a_wrong_voice_format_model_or_field_is_openais_error(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as wrong_voice:
        speech(oai, voice="nobody-here")
    assert "Unknown voice 'nobody-here'" in wrong_voice.value.message
    assert wrong_voice.value.body["param"] == "voice"  # type: ignore[index]
    assert wrong_voice.value.body["type"] == "invalid_request_error"  # type: ignore[index]

    with pytest.raises(openai.BadRequestError) as wrong_format:
        speech(oai, response_format="ogg-vorbis")
    assert "Unsupported output format 'ogg-vorbis'" in wrong_format.value.message
    assert "mp3" in wrong_format.value.message

    with pytest.raises(openai.NotFoundError) as wrong_model:
        speech(oai, model="whisper-1")
    assert "Unknown model 'whisper-1'" in wrong_model.value.message

    with pytest.raises(openai.BadRequestError) as unknown_field:
        speech(oai, extra_body={"pitch": 3})
    assert "pitch" in unknown_field.value.message

    with pytest.raises(openai.BadRequestError) as too_fast:
        speech(oai, speed=9.0)
    assert too_fast.value.body["param"] == "speed"  # type: ignore[index]

    with pytest.raises(openai.BadRequestError) as empty:
        oai.audio.speech.create(model="tts-1", voice="alloy", input="   ")
    assert "empty" in empty.value.message


def test_models_and_voices_listings(oai: openai.OpenAI, piper_server: str) -> None:
    assert {model.id for model in oai.models.list()} >= {"tts-1", "tts-1-hd", "gpt-4o-mini-tts"}
    assert oai.models.retrieve("tts-1").id == "tts-1"
    voices = httpx.get(f"{piper_server}/v1/audio/voices").json()["voices"]
    ids = [voice["id"] for voice in voices]
    assert {"alloy", "echo", "fable", "onyx", "nova", "shimmer", "en_US-joe-medium"} <= set(ids)
    models = httpx.get(f"{piper_server}/v1/audio/models").json()["models"]
    assert {"id": "tts-1"} in models


def test_bearer_auth_with_openai_errors(tmp_path: Path) -> None:
    with running_server(isolated_settings(tmp_path, api_keys="sk-right")) as url:
        with openai.OpenAI(base_url=f"{url}/v1", api_key="sk-wrong", max_retries=0) as wrong:
            with pytest.raises(openai.AuthenticationError) as refused:
                wrong.audio.speech.create(model="tts-1", voice="alloy", input="Hi.")
            assert "API key" in refused.value.message
            with pytest.raises(openai.AuthenticationError):
                wrong.models.list()
        with openai.OpenAI(base_url=f"{url}/v1", api_key="sk-right", max_retries=0) as right:
            answer = right.audio.speech.create(model="tts-1", voice="alloy", input="Hi.")
            samples, rate, _ = decode(answer.content, "mp3", 0)
            assert samples.size / rate > 0.2


def test_language_detection_picks_among_the_engines_languages() -> None:
    detector = LanguageDetector(XTTS_LANGUAGES)
    assert detector.detect("Guten Morgen, wie geht es Ihnen heute?") == "de"
    assert detector.detect("Bonjour, comment allez-vous aujourd'hui ?") == "fr"
    assert detector.detect("你好，今天天气怎么样？我们去公园散步吧。") == "zh-cn"
    assert detector.detect("OK") is None  # too short to tell
    assert LanguageDetector(["en"]).detect("Guten Morgen, wie geht es Ihnen heute?") is None


def test_xtts_openai_voices_and_detected_language(xtts_dir: Path, tmp_path: Path) -> None:
    with (
        running_server(xtts_settings(tmp_path, xtts_dir)) as url,
        openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=300) as client,
    ):
        alloy = client.audio.speech.with_raw_response.create(
            model="tts-1",
            voice="alloy",
            input="Guten Morgen, wie geht es Ihnen heute?",
            response_format="wav",
        )
        assert alloy.headers["x-voice"] == SPEAKER_NAMES[0]  # alloy -> Claribel Dervla
        assert alloy.headers["x-language"] == "de"  # detected: no language field
        coral = client.audio.speech.with_raw_response.create(
            model="tts-1",
            voice="coral",
            input="Good morning.",
            response_format="wav",
            extra_body={"language": "en"},
        )
        assert coral.headers["x-voice"] == SPEAKER_NAMES[1]  # coral -> Ana Florence
        # nova maps to a speaker the tiny checkpoint lacks: the default voice speaks
        nova = client.audio.speech.with_raw_response.create(model="tts-1", voice="nova", input="Hello.")
        assert nova.headers["x-voice"] == SPEAKER_NAMES[0]
        by_name = client.audio.speech.with_raw_response.create(
            model="tts-1", voice=SPEAKER_NAMES[1], input="Hi."
        )
        assert by_name.headers["x-voice"] == SPEAKER_NAMES[1]
