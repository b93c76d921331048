"""Piper's HTTP API at the root (POST / and /synthesize), driven by pipecat's PiperHttpTTSService
and by requests shaped as Piper's own clients send them."""

from __future__ import annotations

import logging
import struct
import time

import httpx
import pytest
from pipecat.services.piper.tts import PiperHttpTTSService

from tests.support.audio import parse_wav, to_16k, word_error_rate
from tests.support.pipecat_run import pipecat_speech

VOICE = "en_US-joe-medium"
TEXT = "Please hold while I transfer your call to the billing department."


def test_pipecat_piper_http_service_speaks(piper_server: str, transcribe) -> None:  # type: ignore[no-untyped-def]
    samples, rate = pipecat_speech(
        lambda session: PiperHttpTTSService(
            base_url=piper_server, aiohttp_session=session, settings=PiperHttpTTSService.Settings(voice=VOICE)
        ),
        TEXT,
    )
    assert samples.size / rate > 2.0
    assert word_error_rate(TEXT, transcribe(to_16k(samples, rate))) <= 0.10


def canonical_header(head: bytes) -> tuple[int, int, int]:
    """(rate, channels, bits) of a canonical 44-byte PCM WAV header; fails on anything else."""
    assert len(head) == 44, len(head)
    riff, _, wave, fmt, fmt_size, tag, channels, rate, byte_rate, align, bits, data = struct.unpack(
        "<4sI4s4sIHHIIHH4s", head[:40]
    )
    assert (riff, wave, fmt, fmt_size, tag, data) == (b"RIFF", b"WAVE", b"fmt ", 16, 1, b"data")
    assert byte_rate == rate * channels * bits // 8 and align == channels * bits // 8
    return rate, channels, bits


@pytest.mark.parametrize("path", ["/", "/synthesize"])
def test_the_first_chunk_is_a_canonical_wav_header(piper_server: str, path: str, transcribe) -> None:  # type: ignore[no-untyped-def]
    # Numbers as strings (Piper reads them with float()), fields Piper's server ignores.
    body = {
        "text": TEXT,
        "voice": VOICE,
        "speaker_id": "0",
        "length_scale": "1.0",
        "noise_scale": 0.667,
        "noise_w_scale": "0.8",
        "speaker": None,
        "extra": "ignored",
    }
    with httpx.stream("POST", piper_server + path, json=body, timeout=120) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"] == "audio/wav"
        chunks = [chunk for chunk in response.iter_raw() if chunk]
    assert canonical_header(chunks[0][:44]) == (22050, 1, 16)
    assert len(chunks[0]) == 44, "the header is its own first chunk"
    rate, _, samples = parse_wav(b"".join(chunks))
    assert word_error_rate(TEXT, transcribe(to_16k(samples, rate))) <= 0.10


def test_length_scale_plain_text_bodies_and_the_dashboard(piper_server: str) -> None:
    def seconds(response: httpx.Response) -> float:
        assert response.status_code == 200, response.text
        rate, _, samples = parse_wav(response.content)
        return samples.size / rate

    normal = seconds(httpx.post(piper_server, json={"text": TEXT}, timeout=120))
    slow = seconds(
        httpx.post(f"{piper_server}/synthesize", json={"text": TEXT, "length_scale": 1.5}, timeout=120)
    )
    assert slow > 1.3 * normal
    # Piper 1.2's server took the text itself as the body.
    plain = httpx.post(
        piper_server, content=TEXT.encode(), headers={"content-type": "text/plain"}, timeout=120
    )
    assert seconds(plain) == pytest.approx(normal, rel=0.05)
    page = httpx.get(piper_server + "/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_bad_input_gets_a_clear_4xx(piper_server: str) -> None:
    def refused(response: httpx.Response, code: str) -> None:
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == code

    post = lambda path="/synthesize", **kwargs: httpx.post(piper_server + path, timeout=60, **kwargs)  # noqa: E731
    refused(post(json={"text": "Hello.", "voice": "de_DE-nobody-low"}), "unknown_voice")
    refused(post(json={"text": "  "}), "empty_text")
    refused(post("/", json={"voice": VOICE}), "invalid_request")  # no text
    refused(post(json={"text": "Hi.", "length_scale": "slow"}), "invalid_request")
    refused(post(json={"text": "Hi.", "length_scale": 0}), "invalid_request")
    refused(post(json={"text": ["Hi."]}), "invalid_request")
    refused(post(json={"text": "Hi.", "speaker_id": "first"}), "invalid_request")
    refused(post(json=["Hi."]), "invalid_body")
    refused(post(content=b"{broken", headers={"content-type": "application/json"}), "invalid_body")
    refused(post(content=b"\xff\xfe\x00", headers={"content-type": "text/plain"}), "invalid_body")
    assert post(json={"text": "Still here."}).status_code == 200


def test_an_unmatched_path_is_logged_with_its_method_and_path(
    piper_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    """So an operator sees which API a client expected."""
    with caplog.at_level(logging.INFO, logger="sentiric_tts.access"):
        assert httpx.post(f"{piper_server}/api/v2/tts", json={"text": "Hi."}).status_code == 404
        assert httpx.get(f"{piper_server}/voices%0Aforged=1 x").status_code == 404
        assert httpx.get(f"{piper_server}/api/speakers").status_code == 200
        # The access line is written once the response is out: wait for it (bounded).
        for _ in range(100):
            lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "sentiric_tts.access"]
            if len(lines) >= 3:
                break
            time.sleep(0.05)
    unmatched = [message for level, message in lines if level == logging.WARNING]
    assert len(unmatched) == 2, lines
    assert "method=POST" in unmatched[0] and "status=404" in unmatched[0]
    assert unmatched[0].endswith("path=/api/v2/tts")
    assert "\n" not in unmatched[1] and unmatched[1].endswith("path=/voices%0Aforged=1%20x")
    assert [message for level, message in lines if level == logging.INFO and "route=/api/speakers" in message]
