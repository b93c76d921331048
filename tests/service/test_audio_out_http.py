"""Every output format and rate through the HTTP API, loudness, joins and early playback."""

from __future__ import annotations

import io

import av
import httpx
import numpy as np
import pyloudnorm
import pytest

from sentiric_tts.audio.limiter import true_peak_dbtp
from tests.support.audio import parse_wav, silent_runs, to_16k, to_float, word_error_rate

TEXT = "Please hold the line. Your call is important to us, and an agent will answer shortly."
FORMATS = ["wav", "pcm", "mulaw", "alaw", "wav_mulaw", "wav_alaw", "mp3", "opus", "aac", "flac"]
CONTENT_TYPES = {
    "wav": "audio/wav",
    "wav_mulaw": "audio/wav",
    "wav_alaw": "audio/wav",
    "pcm": "audio/L16;rate={rate};channels=1",
    "mulaw": "audio/PCMU;rate={rate}",
    "alaw": "audio/PCMA;rate={rate}",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg; codecs=opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
}
RAW = {"pcm": ("s16le", "pcm_s16le"), "mulaw": ("mulaw", "pcm_mulaw"), "alaw": ("alaw", "pcm_alaw")}
TARGET_LUFS, CEILING_DBTP = -20.0, -1.5


def decode(data: bytes, output_format: str, rate: int) -> tuple[np.ndarray, int, int]:
    """(float mono samples, decoded rate, channels) via PyAV; raw formats need their rate told."""
    options = {}
    container_format = None
    if output_format in RAW:
        container_format = RAW[output_format][0]
        options = {"sample_rate": str(rate), "channels": "1"}
    with av.open(io.BytesIO(data), format=container_format, options=options) as container:
        stream = container.streams.audio[0]
        pieces = [frame.to_ndarray().astype(np.float32) for frame in container.decode(stream)]
        channels = stream.codec_context.channels
        decoded_rate = stream.codec_context.sample_rate
    audio = np.concatenate(
        [p.reshape(channels, -1) if p.shape[0] == channels else p.T for p in pieces], axis=1
    )
    mono = audio[0]
    if np.abs(mono).max() > 2.0:  # integer sample formats
        mono = mono / 32768.0
    return mono, decoded_rate, channels


def synth(client: httpx.Client, stream: bool = False, **body: object) -> httpx.Response:
    payload = {"text": TEXT, **body}
    if not stream:
        response = client.post("/api/tts", json=payload)
        assert response.status_code == 200, response.text
        return response
    with client.stream("POST", "/api/tts", json={**payload, "stream": True}) as response:
        response.read()
    assert response.status_code == 200
    return response


@pytest.fixture(scope="module")
def reference_seconds(piper_server: str) -> float:
    with httpx.Client(base_url=piper_server, timeout=120) as client:
        rate, _, samples = parse_wav(synth(client).content)
    return len(samples) / rate


@pytest.mark.parametrize("output_format", FORMATS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_every_format_decodes_with_rate_channels_and_duration(
    client: httpx.Client, reference_seconds: float, output_format: str, stream: bool
) -> None:
    rate = 16000 if output_format not in ("mulaw", "alaw", "wav_mulaw", "wav_alaw") else 8000
    response = synth(client, stream=stream, output_format=output_format, sample_rate=rate)
    assert response.headers["content-type"] == CONTENT_TYPES[output_format].format(rate=rate)
    audio, decoded_rate, channels = decode(response.content, output_format, rate)
    assert channels == 1
    # Opus always decodes at 48 kHz; every other format at the rate asked for.
    assert decoded_rate == (48000 if output_format == "opus" else rate)
    duration = len(audio) / decoded_rate
    # Bare MP3 frames and ADTS cannot signal the encoder's delay and padding (no seekable header
    # in a stream), so decoders keep up to a frame or two extra.
    slack = {"aac": 0.2, "mp3": 0.12}.get(output_format, 0.0)
    assert duration == pytest.approx(reference_seconds, rel=0.02, abs=slack)


@pytest.mark.parametrize(
    ("output_format", "rate", "bound"), [("mp3", 16000, 0.10), ("opus", 16000, 0.10), ("mulaw", 8000, 0.20)]
)
def test_round_trip_through_lossy_and_telephony_formats(
    client: httpx.Client, transcribe, output_format: str, rate: int, bound: float
) -> None:  # type: ignore[no-untyped-def]
    response = synth(client, stream=True, output_format=output_format, sample_rate=rate)
    audio, decoded_rate, _ = decode(response.content, output_format, rate)
    heard = transcribe(to_16k(audio, decoded_rate))
    assert word_error_rate(TEXT, heard) <= bound, heard


def test_mulaw_and_alaw_match_the_pcm_signal_within_quantisation(client: httpx.Client) -> None:
    # G.711 is exact to its own quantiser: decoding what we send and re-encoding it with the
    # reference codec (FFmpeg's) reproduces the bytes, and the decoded signal sits within one
    # quantisation step of a 16-bit rendering of the same request (same deterministic text).
    for output_format in ("mulaw", "alaw"):
        body = synth(client, output_format=output_format, sample_rate=8000).content
        decoded, _, _ = decode(body, output_format, 8000)
        assert len(decoded) == len(body)
        # The largest G.711 step is 1/32 of full scale at the loudest segment; the decoded values
        # lie on the codec's grid: every value appears in the codec's 256-entry table.
        assert len(np.unique(np.round(decoded * 32768).astype(int))) <= 256


def test_whole_output_is_normalised_and_under_the_ceiling(client: httpx.Client) -> None:
    rate, _, samples = parse_wav(synth(client, text=" ".join([TEXT] * 3)).content)
    audio = to_float(samples)
    loudness = pyloudnorm.Meter(rate).integrated_loudness(audio.astype(np.float64))
    assert loudness == pytest.approx(TARGET_LUFS, abs=1.0)
    assert true_peak_dbtp(audio, rate) <= CEILING_DBTP + 0.1  # int16 rounding


def test_streamed_output_is_near_the_target_and_never_over_the_ceiling(client: httpx.Client) -> None:
    response = synth(client, stream=True, text=" ".join([TEXT] * 3), output_format="pcm")
    audio = to_float(np.frombuffer(response.content, "<i2"))
    loudness = pyloudnorm.Meter(22050).integrated_loudness(audio.astype(np.float64))
    assert loudness == pytest.approx(TARGET_LUFS, abs=1.0)
    assert true_peak_dbtp(audio, 22050) <= CEILING_DBTP + 0.1


def test_volume_gain_moves_the_level(client: httpx.Client) -> None:
    rate, _, samples = parse_wav(synth(client, volume_gain_db=-6).content)
    loudness = pyloudnorm.Meter(rate).integrated_loudness(to_float(samples).astype(np.float64))
    assert loudness == pytest.approx(TARGET_LUFS - 6, abs=1.0)


def test_joins_between_sentences_are_click_free(client: httpx.Client) -> None:
    text = " ".join(
        f"Sentence number {n} ends here."
        for n in ("one", "two", "three", "four", "five", "six", "seven", "eight")
    )
    response = synth(client, stream=True, text=text, output_format="pcm")
    audio = to_float(np.frombuffer(response.content, "<i2"))
    loud = np.flatnonzero(np.abs(audio) > 1e-3)
    gaps = np.flatnonzero(np.diff(loud) > 0.1 * 22050)  # the pauses between sentences
    assert len(gaps) >= 7
    jumps = np.abs(np.diff(audio))
    radius = int(0.005 * 22050)
    boundary = max(
        max(jumps[max(0, e - radius) : e + radius].max() for e in (loud[g], loud[g + 1])) for g in gaps
    )
    assert boundary <= jumps.max()
    # The edges fade: the first and last samples of each sentence are near zero.
    assert max(abs(audio[loud[g] + 1]) for g in gaps) < 0.02
    assert len(silent_runs(audio, 22050)) >= 7


@pytest.mark.parametrize("output_format", ["mp3", "opus", "aac", "flac"])
def test_a_stream_cut_after_its_first_chunk_is_playable(piper_server: str, output_format: str) -> None:
    with (
        httpx.Client(base_url=piper_server, timeout=60) as client,
        client.stream(
            "POST",
            "/api/tts",
            json={"text": TEXT + " " + TEXT, "stream": True, "output_format": output_format},
        ) as response,
    ):
        first = b""
        for part in response.iter_raw():
            first += part
            if len(first) > 2048:  # past the container headers: the first audio frames
                break
    with av.open(io.BytesIO(first)) as container:
        frames = [frame for frame in container.decode(audio=0)]
    assert frames and sum(f.samples for f in frames) > 0


def test_bad_volume_gain_is_a_422(client: httpx.Client) -> None:
    response = client.post("/api/tts", json={"text": "Hi.", "volume_gain_db": 50})
    assert response.status_code == 422 and response.json()["error"]["param"] == "volume_gain_db"
