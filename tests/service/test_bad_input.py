"""Every bad input gets a 4xx that says what to fix, never a 5xx, silence or a silent fallback."""

from __future__ import annotations

import httpx
import pytest

CASES: list[tuple[str, object, str, str]] = [
    # (name, body, expected param, words the message must contain)
    ("empty text", {"text": ""}, "text", "empty"),
    ("blank text", {"text": "   \n\t "}, "text", "empty"),
    ("punctuation only", {"text": "?!..."}, "text", "nothing to speak"),
    ("too long", {"text": "word " * 1100}, "text", "limit is 5000"),
    ("missing text", {"language": "en"}, "text", "required"),
    ("unknown voice", {"text": "Hi.", "voice": "Nobody"}, "voice", "en_US-joe-medium"),
    ("unknown language", {"text": "Hi.", "language": "xx"}, "language", "Available: en"),
    ("language the voice lacks", {"text": "Hola.", "language": "es"}, "language", "not available"),
    ("bad rate", {"text": "Hi.", "sample_rate": 11025}, "sample_rate", "8000, 16000"),
    ("bad format", {"text": "Hi.", "output_format": "wma"}, "output_format", "wav, pcm"),
    ("speed too high", {"text": "Hi.", "speed": 9}, "speed", "less than or equal to 4"),
    ("speed too low", {"text": "Hi.", "speed": 0.1}, "speed", "greater than or equal to 0.25"),
    ("speed wrong type", {"text": "Hi.", "speed": "fast"}, "speed", "valid number"),
    ("text wrong type", {"text": 42}, "text", "valid string"),
    ("stream wrong type", {"text": "Hi.", "stream": "maybe"}, "stream", "valid boolean"),
    ("rate wrong type", {"text": "Hi.", "sample_rate": "high"}, "sample_rate", "valid integer"),
    ("top_p out of range", {"text": "Hi.", "top_p": 1.5}, "top_p", "less than or equal to 1"),
    ("unknown field", {"text": "Hi.", "sampel_rate": 16000}, "sampel_rate", "Unknown field"),
    ("two different voices", {"text": "Hi.", "voice": "a", "speaker_idx": "b"}, None, "voice"),
    ("not an object", ["text"], None, "valid dictionary"),
]


@pytest.mark.parametrize(("name", "body", "param", "needle"), CASES, ids=[c[0] for c in CASES])
def test_bad_json_body_is_a_clear_422(
    client: httpx.Client, name: str, body: object, param: str | None, needle: str
) -> None:
    for stream in (False, True):
        payload = {**body, "stream": stream} if isinstance(body, dict) and "stream" not in body else body
        response = client.post("/api/tts", json=payload)
        assert response.status_code == 422, (name, response.text)
        error = response.json()["error"]
        assert needle.lower() in error["message"].lower(), error
        if param is not None:
            assert error["param"] == param
        assert "Traceback" not in response.text


def test_malformed_json_is_a_422(client: httpx.Client) -> None:
    response = client.post("/api/tts", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["error"]["message"]


def test_allowed_values_are_listed(client: httpx.Client) -> None:
    error = client.post("/api/tts", json={"text": "Hi.", "sample_rate": 12345}).json()["error"]
    assert error["allowed"] == [8000, 16000, 22050, 24000, 32000, 44100, 48000]


def test_unknown_route_and_method(client: httpx.Client) -> None:
    assert client.get("/api/nothing-here").status_code == 404
    response = client.get("/api/tts")
    assert response.status_code == 405 and "error" in response.json()
