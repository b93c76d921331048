"""SSML and the text frontend through the HTTP API, measured on real Piper output."""

from __future__ import annotations

import math
import time

import httpx
import numpy as np
import pytest

from sentiric_tts.synthesis.normalize import normalize_text
from tests.support.audio import (
    median_f0,
    pcm16,
    silent_runs,
    speech_span,
    to_16k,
    to_float,
    word_error_rate,
)

RATE = 22050
SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."


def speak(client: httpx.Client, text: str, **body: object) -> tuple[np.ndarray, httpx.Response]:
    response = client.post("/api/tts", json={"text": text, "output_format": "pcm", **body})
    assert response.status_code == 200, response.text
    return to_float(pcm16(response.content)), response


def ssml(inner: str) -> str:
    return (
        f'<speak version="1.1" xmlns="http://www.w3.org/2001/10/synthesis" xml:lang="en-US">{inner}</speak>'
    )


def test_break_time_gives_that_silence(client: httpx.Client) -> None:
    audio, _ = speak(client, ssml('Hello there.<break time="700ms"/>How are you today?'))
    longest = max(silent_runs(audio, RATE))
    assert longest == pytest.approx(0.700, abs=0.030)


def test_break_strength_and_sentence_pauses(client: httpx.Client) -> None:
    audio, _ = speak(client, ssml('One.<break strength="x-strong"/>Two.'))
    assert max(silent_runs(audio, RATE)) == pytest.approx(1.2, abs=0.03)


def test_rate_fifty_percent_doubles_the_duration(client: httpx.Client) -> None:
    normal, _ = speak(client, ssml(SENTENCE))
    slow, _ = speak(client, ssml(f'<prosody rate="50%">{SENTENCE}</prosody>'))
    assert speech_span(slow, RATE) / speech_span(normal, RATE) == pytest.approx(2.0, rel=0.10)


def test_minus_six_db_lowers_rms_by_six_db(client: httpx.Client) -> None:
    audio, _ = speak(
        client,
        ssml(f'{SENTENCE}<break time="1s"/><prosody volume="-6dB">{SENTENCE}</prosody>'),
    )
    loud = np.flatnonzero(np.abs(audio) > 1e-3)
    gap_start = int(np.argmax(np.diff(loud))) + 1  # the 1 s break splits the two renderings
    first, second = audio[loud[0] : loud[gap_start - 1]], audio[loud[gap_start] : loud[-1]]

    def rms_db(x: np.ndarray) -> float:
        return 20 * math.log10(float(np.sqrt(np.mean(x**2))))

    assert rms_db(first) - rms_db(second) == pytest.approx(6.0, abs=1.0)


def test_pitch_plus_four_semitones_keeps_duration(client: httpx.Client) -> None:
    plain, _ = speak(client, ssml(SENTENCE))
    high, _ = speak(client, ssml(f'<prosody pitch="+4st">{SENTENCE}</prosody>'))
    shift = 12 * math.log2(median_f0(high, RATE, 70, 500, 0.6) / median_f0(plain, RATE, 70, 500, 0.6))
    assert shift == pytest.approx(4.0, abs=1.0)
    assert speech_span(high, RATE) == pytest.approx(speech_span(plain, RATE), rel=0.05)


def test_streamed_and_whole_ssml_have_the_same_duration(client: httpx.Client) -> None:
    document = ssml(
        '<p><s>First <emphasis level="strong">important</emphasis> point.</s>'
        '<s><prosody rate="fast" pitch="-2st">Second point,</prosody> said quickly.</s></p>'
        '<break time="300ms"/><say-as interpret-as="digits">42</say-as>'
    )
    whole, _ = speak(client, document)
    with client.stream(
        "POST", "/api/tts", json={"text": document, "output_format": "pcm", "stream": True}
    ) as r:
        streamed = to_float(pcm16(r.read()))
    # Piper samples its waveform afresh each time (noise_scale), which moves the silence-trim points
    # at segment edges by a few ms per segment between any two renders, streamed or not; the
    # exact streamed == whole check runs on XTTS with forced token counts (test_xtts_http.py).
    assert len(streamed) == pytest.approx(len(whole), rel=0.02)


def hears(transcribe, audio: np.ndarray) -> list[str]:  # type: ignore[no-untyped-def]
    """What Whisper heard, with its digits turned into words so both sides compare as words."""
    return normalize_text(transcribe(to_16k(audio, RATE)), "en").lower().replace("-", " ").split()


def test_say_as_and_normalisation_round_trip(client: httpx.Client, transcribe) -> None:  # type: ignore[no-untyped-def]
    audio, _ = speak(client, ssml('I have <say-as interpret-as="cardinal">123</say-as> apples.'))
    heard = " ".join(hears(transcribe, audio))
    assert "one hundred" in heard and "twenty three" in heard, heard

    audio, _ = speak(
        client, ssml('It is due on <say-as interpret-as="date" format="mdy">03/05/2024</say-as>.')
    )
    heard = " ".join(hears(transcribe, audio))
    assert "march" in heard and ("fifth" in heard or "five" in heard), heard

    audio, _ = speak(client, ssml('Spell it: <say-as interpret-as="characters">XYZ</say-as>.'))
    heard = transcribe(to_16k(audio, RATE)).upper()
    letters = "".join(ch for ch in heard.split(":")[-1] if ch.isalpha())
    assert "XYZ" in letters, heard

    text = "The ticket costs $25 and the train leaves at 10:30 on the 3rd platform."
    audio, _ = speak(client, text)
    assert word_error_rate(normalize_text(text, "en"), " ".join(hears(transcribe, audio))) <= 0.25


def test_unknown_tags_are_spoken_and_reported(client: httpx.Client, transcribe) -> None:  # type: ignore[no-untyped-def]
    audio, response = speak(client, ssml("<wobble>Good morning</wobble> <audio>everyone</audio>."))
    assert response.headers["x-ssml-ignored-tags"] == "wobble,audio"
    heard = " ".join(hears(transcribe, audio))
    assert "good morning" in heard and "everyone" in heard, heard


def test_lang_the_engine_lacks_is_read_in_the_surrounding_language(client: httpx.Client) -> None:
    _, response = speak(client, ssml('Say <lang xml:lang="fr-FR">bonjour</lang> please.'))
    assert response.headers["x-ssml-ignored-tags"] == "lang:fr-FR"


def test_plan_shows_segments_without_synthesizing(client: httpx.Client) -> None:
    document = ssml(
        'Hello <prosody rate="slow" pitch="+2st" volume="-3dB">world</prosody>.'
        '<break time="250ms"/><mark name="here"/>It costs $5.'
    )
    plan = client.post("/api/tts/plan", json={"text": document}).json()
    kinds = [item["type"] for item in plan["items"]]
    assert kinds == ["speech", "speech", "speech", "pause", "mark", "speech"]
    slow = plan["items"][1]
    assert (slow["text"], slow["rate"], slow["pitch_semitones"], slow["volume_db"]) == (
        "world",
        0.75,
        2.0,
        -3.0,
    )
    assert plan["items"][3]["seconds"] == 0.25 and plan["items"][4]["name"] == "here"
    assert plan["items"][5]["text"] == "It costs five dollars."
    assert plan["language"] == "en" and plan["voice"] == "en_US-joe-medium"


def test_plain_text_is_normalised_per_word(client: httpx.Client) -> None:
    plan = client.post("/api/tts/plan", json={"text": "Run 5 km at 7:15, e.g. with Dr. Smith."}).json()
    text = " ".join(item["text"] for item in plan["items"])
    assert "five kilometres" in text or "five kilometers" in text
    assert "km" not in text.split()


HOSTILE = {
    "billion laughs": '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
        for i in range(1, 10)
    )
    + "]><speak>&lol9;</speak>",
    "quadratic blowup": '<!DOCTYPE s [<!ENTITY a "' + "a" * 50000 + '">]><speak>' + "&a;" * 200 + "</speak>",
    "xxe": '<!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]><speak>&x;</speak>',
    "external dtd": '<!DOCTYPE speak SYSTEM "http://127.0.0.1:9/evil.dtd"><speak>hi</speak>',
    "too deep": "<speak>" + "<prosody>" * 200 + "hi" + "</prosody>" * 200 + "</speak>",
    "too many elements": "<speak>" + '<break time="1ms"/>' * 5000 + "hi</speak>",
    "too big": "<speak>" + "word " * 20000 + "</speak>",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_ssml_is_refused(client: httpx.Client, name: str) -> None:
    started = time.perf_counter()
    response = client.post("/api/tts", json={"text": HOSTILE[name]})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] in ("invalid_ssml", "text_too_long"), error
    assert "root:" not in response.text and "lol" not in error["message"]
    assert time.perf_counter() - started >= 0  # the figure is reported by bench, never asserted


def test_malformed_ssml_reports_line_and_column(client: httpx.Client) -> None:
    response = client.post("/api/tts", json={"text": "<speak>\n  <prosody rate='slow'>hi</speak>"})
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "line 2, column" in message


def test_declared_ssml_that_is_not_ssml_is_refused_not_read_aloud(client: httpx.Client) -> None:
    response = client.post("/api/tts", json={"text": "hello <b>there</b>", "text_type": "ssml"})
    assert response.status_code == 422 and "speak" in response.json()["error"]["message"]
    bad_attr = client.post("/api/tts", json={"text": ssml('<prosody rate="banana">hi</prosody>')})
    assert bad_attr.status_code == 422 and "rate" in bad_attr.json()["error"]["message"]
    unknown_voice = client.post("/api/tts", json={"text": ssml('<voice name="Nobody">hi</voice>')})
    assert unknown_voice.status_code == 422 and "Nobody" in unknown_voice.json()["error"]["message"]
