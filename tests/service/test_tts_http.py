"""The native HTTP API on the real Piper engine: whole and streamed, formats, rates, concurrency."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.support.audio import parse_wav, pcm16, to_16k, wav_with_stdlib, word_error_rate

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back tomorrow morning at the office.",
    "Our meeting starts in ten minutes, so bring your notes.",
    "The weather today is sunny with a light breeze from the west.",
]


def tts(client: httpx.Client, **body: object) -> httpx.Response:
    response = client.post("/api/tts", json=body)
    assert response.status_code == 200, response.text
    return response


def stream_tts(client: httpx.Client, **body: object) -> tuple[httpx.Response, list[bytes]]:
    with client.stream("POST", "/api/tts", json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        return response, list(response.iter_bytes())


def test_whole_wav_has_an_exact_header(client: httpx.Client) -> None:
    response = tts(client, text=SENTENCES[0])
    assert response.headers["content-type"] == "audio/wav"
    rate, channels, frames = wav_with_stdlib(response.content)
    assert (rate, channels) == (22050, 1)
    assert frames == len(parse_wav(response.content)[2]) > 22050  # over a second of speech
    assert float(response.headers["x-audio-duration"]) == pytest.approx(frames / rate, abs=1e-3)


@pytest.mark.parametrize("output_format", ["wav", "pcm"])
def test_streamed_and_whole_decode_to_the_same_duration(client: httpx.Client, output_format: str) -> None:
    text = " ".join(SENTENCES)
    whole = tts(client, text=text, output_format=output_format, sample_rate=16000).content
    streamed_response, parts = stream_tts(client, text=text, output_format=output_format, sample_rate=16000)
    streamed = b"".join(parts)
    assert len(parts) > 1, "a multi-sentence stream arrives in several chunks"
    if output_format == "wav":
        whole_samples, streamed_samples = parse_wav(whole)[2], parse_wav(streamed)[2]
        assert streamed[4:8] == b"\xff\xff\xff\xff", "a streamed WAV declares an unknown length"
    else:
        whole_samples, streamed_samples = pcm16(whole), pcm16(streamed)
        assert streamed_response.headers["content-type"] == "audio/L16;rate=16000;channels=1"
    assert len(streamed_samples) == pytest.approx(len(whole_samples), rel=0.01)


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000, 32000, 44100, 48000])
def test_resampled_output_has_the_requested_rate(client: httpx.Client, rate: int) -> None:
    response = tts(client, text=SENTENCES[1], sample_rate=rate)
    got_rate, channels, samples = parse_wav(response.content)
    assert (got_rate, channels) == (rate, 1)
    native = parse_wav(tts(client, text=SENTENCES[1]).content)[2]
    # Same speech, so the same duration at any rate.
    assert len(samples) / rate == pytest.approx(len(native) / 22050, rel=0.01)
    # The signal is speech-like at every rate: not silent, not clipped flat.
    assert 0.005 < np.sqrt(np.mean((samples / 32768.0) ** 2)) < 0.5


def test_round_trip_intelligibility(client: httpx.Client, transcribe) -> None:  # type: ignore[no-untyped-def]
    text = " ".join(SENTENCES)
    whole = tts(client, text=text, sample_rate=16000).content
    _, parts = stream_tts(client, text=text, output_format="pcm", sample_rate=16000)
    for samples in (parse_wav(whole)[2], pcm16(b"".join(parts))):
        heard = transcribe(to_16k(samples, 16000))
        assert word_error_rate(text, heard) <= 0.10, heard


def test_eight_concurrent_requests_each_get_their_own_speech(client: httpx.Client, transcribe) -> None:  # type: ignore[no-untyped-def]
    texts = [
        f"{sentence} This is request number {number}."
        for number, sentence in zip(
            ["one", "two", "three", "four", "five", "six", "seven", "eight"], SENTENCES * 2, strict=True
        )
    ]

    def call(index: int) -> bytes:
        body = {"text": texts[index], "stream": index % 2 == 0, "sample_rate": 16000}
        if index % 2 == 0:
            return b"".join(stream_tts(client, **body)[1])
        return tts(client, **body).content

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(8)))
    for text, audio in zip(texts, results, strict=True):
        heard = transcribe(to_16k(parse_wav(audio)[2], 16000))
        assert word_error_rate(text, heard) <= 0.15, (text, heard)


def test_long_text_is_split_and_spoken_in_full(client: httpx.Client) -> None:
    sentence = "This sentence is repeated to build a long text for the splitter, without any full stop"
    text = ", ".join([sentence] * 12) + "."  # one ~1000-character sentence, over Piper's segment limit
    samples = parse_wav(tts(client, text=text, sample_rate=16000).content)[2]
    assert len(samples) / 16000 > 40  # about 60 s of speech, none of it dropped


def test_speed_changes_duration(client: httpx.Client) -> None:
    normal = len(parse_wav(tts(client, text=SENTENCES[2]).content)[2])
    fast = len(parse_wav(tts(client, text=SENTENCES[2], speed=2.0).content)[2])
    slow = len(parse_wav(tts(client, text=SENTENCES[2], speed=0.5).content)[2])
    # Durations are proportional to 1/speed (the engine corrects its length scale's rounding).
    assert fast == pytest.approx(normal / 2, rel=0.05)
    assert slow == pytest.approx(normal * 2, rel=0.05)


def test_catalogue_endpoints(client: httpx.Client) -> None:
    speakers = client.get("/api/speakers").json()
    assert speakers["default"] == "en_US-joe-medium"
    assert {"id": "en_US-joe-medium", "kind": "piper"}.items() <= speakers["voices"][0].items()
    assert client.get("/api/languages").json() == {"default": "en", "languages": ["en"]}
    config = client.get("/api/config").json()
    assert config["engine"] == "piper" and config["native_sample_rate"] == 22050
    assert config["max_text_chars"] == 5000 and "pcm" in config["output_formats"]
    # Piper calls run in parallel: stream threads plus as many that only start requests.
    threads = config["engine_threads"]
    assert threads["instances"] == 1 and threads["stream_workers"] >= 1
    assert threads["first_audio_workers"] == threads["stream_workers"] and threads["stream_worker_nice"] == 10
    assert threads["stream_worker_idle_class"] is True
    assert threads["kind"] == "thread" and threads["max_batch"] is None and threads["graph_batch_sizes"] == []


def test_health_docs_and_openapi(client: httpx.Client) -> None:
    assert client.get("/health/live").json() == {"status": "live"}
    assert client.get("/health/ready").json() == {"status": "ready", "engine": "piper"}
    assert client.get("/health").status_code == 200
    assert "swagger" in client.get("/docs").text.lower()
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/tts", "/api/speakers", "/api/languages", "/api/config", "/health/ready"} <= set(paths)


def test_voice_alias_and_language_variants(client: httpx.Client) -> None:
    response = tts(client, text="Hello there.", speaker_idx="en_US-joe-medium", language="en-US")
    assert response.headers["x-voice"] == "en_US-joe-medium" and response.headers["x-language"] == "en"


def test_a_client_that_disconnects_mid_stream_frees_the_engine(
    client: httpx.Client, piper_server: str
) -> None:
    # ~4800 characters at 48 kHz: ~5 minutes of audio, ~29 MB, far more than socket buffers hold,
    # so the job is still running when the client has read its first bytes.
    text = " ".join(SENTENCES * 22)
    body = {"text": text, "stream": True, "output_format": "pcm", "sample_rate": 48000}
    with (
        httpx.Client(base_url=piper_server, timeout=60) as leaver,
        leaver.stream("POST", "/api/tts", json=body) as response,
    ):
        assert next(response.iter_raw())
        assert client.get("/api/status").json()["jobs_in_flight"] == 1
    # leaving the block closed the connection mid-stream
    # A poll on scheduler state bounded generously (a loaded CI machine), not a timing assertion.
    deadline = time.monotonic() + 60
    while client.get("/api/status").json()["jobs_in_flight"] != 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.get("/api/status").json()["jobs_in_flight"] == 0
