"""Property-based fuzzing of the text and SSML fields against the live Piper service (hypothesis):
whatever the text, no 5xx, and no more audio than a spoken word per input byte (plus the pauses a
request may ask for).

Texts are built from fragments that broke or amplified the service once (lone surrogates,
noncharacters, controls, emoji, combining marks, long runs, other scripts, digits, markup) mixed
with random Unicode, so few examples reach the interesting cases.
"""

from __future__ import annotations

import json
from xml.sax.saxutils import escape, quoteattr

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentiric_tts.settings.limits import RequestLimitSettings

MAX_PAUSE_S = RequestLimitSettings.model_fields["max_pause_seconds"].default
# A digit read one by one ("7": "seven") is the most speech one byte of text can ask for: ~0.35 s
# with Piper's voice. Slower speech (speed, SSML rate) stretches it.
SECONDS_PER_BYTE = 0.45
SLOWEST = 0.25  # the pipeline's lowest speed
FUZZ = settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))

HOSTILE = [
    "\ud800", "\udfff", "\ud83d", "\ufffe", "\uffff", "\ufdd0", "\U0010ffff", "\ue000", "\U000e0041",
    "\x00", "\x1b", "\x7f", "\x85", "\u200b", "\u200d", "\u202e", "\u2066", "\u00ad", "\ufeff", "\u2028",
    "\U0001f600", "\U0001f44d\U0001f3fd", "\U0001f1e9\U0001f1ea", "#\ufe0f\u20e3", "\u2764\ufe0f",
    "\u0301" * 40, "e\u0301", "Z" + "\u0336\u0317\u0353" * 12, "x" * 300, "ab" * 150, "!" * 200, "." * 99,
    "中文", "我们今天去公园", "Москва", "Ελλάδα", "مرحبا", "שלום", "नमस्ते", "ﬁ", "Å", "ß",
    "12345678901234567890", "007", "3.5%", "$5", "5 km", "2024-03-05", "10:30", "1st", "-", "—",
    "&", "<", ">", "]]>", "'", '"', "\\", "%", "w", "Mr.", "e.g.", "...",
]  # fmt: skip
WORDS = ["Hello", "world", "the", "quick", "brown", "fox", "a", "I", "call", "me", "tomorrow"]
FRAGMENT = st.one_of(
    st.sampled_from(HOSTILE),
    st.sampled_from(WORDS),
    st.sampled_from([" ", " ", ". ", ", ", "? ", "\n"]),
    st.text(st.characters(exclude_categories=()), max_size=12),  # any code point, surrogates too
)
TEXT = st.lists(FRAGMENT, min_size=1, max_size=8).map("".join)
SPEEDS = st.sampled_from([0.25, 0.5, 1.0, 1.0, 1.0, 2.0, 4.0])
RATES = {"x-slow": 0.5, "slow": 0.75, "50%": 0.5, "10%": 0.1, "2": 2.0, "+20%": 1.2, "bogus": 1.0}


def _ssml_element() -> st.SearchStrategy[tuple[str, float]]:
    """(markup, the slowest rate it speaks at)."""
    spoken = TEXT.map(escape)
    return st.one_of(
        spoken.map(lambda text: (text, 1.0)),
        TEXT.map(lambda text: (text, 1.0)),  # unescaped: often not well-formed, which is a 422
        st.sampled_from(["0ms", "250ms", "1.5s", "10s", "11s", "-1s", "1e9s", "x"]).map(
            lambda time: (f"<break time={quoteattr(time)}/>", 1.0)
        ),
        st.sampled_from(["none", "x-strong", "huge"]).map(
            lambda s: (f"<break strength={quoteattr(s)}/>", 1.0)
        ),
        st.tuples(st.sampled_from(sorted(RATES)), spoken).map(
            lambda rt: (f"<prosody rate={quoteattr(rt[0])}>{rt[1]}</prosody>", RATES[rt[0]])
        ),
        st.tuples(st.sampled_from(["high", "-30st", "+2st"]), spoken).map(
            lambda pt: (f"<prosody pitch={quoteattr(pt[0])} volume='loud'>{pt[1]}</prosody>", 1.0)
        ),
        spoken.map(lambda text: (f"<emphasis level='strong'>{text}</emphasis>", 0.85)),
        spoken.map(lambda text: (f"<s>{text}</s><p>{text}</p>", 1.0)),
        st.tuples(
            st.sampled_from(["characters", "digits", "telephone", "date", "cardinal", "nope"]), spoken
        ).map(lambda kt: (f"<say-as interpret-as={quoteattr(kt[0])}>{kt[1]}</say-as>", 1.0)),
        st.tuples(TEXT, spoken).map(lambda at: (f"<sub alias={quoteattr(at[0])}>{at[1]}</sub>", 1.0)),
        st.tuples(TEXT, spoken).map(lambda lt: (f"<lang xml:lang={quoteattr(lt[0])}>{lt[1]}</lang>", 1.0)),
        TEXT.map(lambda name: (f"<mark name={quoteattr(name)}/>", 1.0)),
        spoken.map(lambda text: (f"<unknown-tag>{text}</unknown-tag>", 1.0)),
    )


SSML = st.lists(_ssml_element(), min_size=1, max_size=6).map(
    lambda parts: ("<speak>" + "".join(markup for markup, _ in parts) + "</speak>", min(r for _, r in parts))
)


def _post(http: httpx.Client, path: str, body: dict[str, object]) -> httpx.Response:
    # Escaped JSON, the way most clients send it: a lone surrogate arrives as \ud800.
    return http.post(path, content=json.dumps(body).encode(), headers={"content-type": "application/json"})


def _check(response: httpx.Response, text: str, audio_s: float | None, slowest: float) -> None:
    assert response.status_code < 500, (text, response.text)
    if response.status_code != 200:
        assert response.json()["error"]["message"], "every refusal says what to fix"
        return
    assert audio_s is not None
    size = len(text.encode("utf-8", "surrogatepass"))
    bound = SECONDS_PER_BYTE * size / max(SLOWEST, slowest) + MAX_PAUSE_S + 3.0
    assert audio_s <= bound, (text, audio_s, bound)


@FUZZ
@given(text=TEXT, speed=SPEEDS)
def test_plain_text_never_breaks_the_service(piper_server: str, text: str, speed: float) -> None:
    with httpx.Client(base_url=piper_server, timeout=120) as http:
        body = {
            "text": text,
            "speed": speed,
            "text_type": "text",
            "output_format": "pcm",
            "sample_rate": 8000,
        }
        response = _post(http, "/api/tts", body)
        audio_s = float(response.headers["x-audio-duration"]) if response.status_code == 200 else None
        _check(response, text, audio_s, speed)


@settings(FUZZ, max_examples=15)  # an SSML example costs more: slow, shifted and spelled speech
@given(document=SSML, speed=SPEEDS)
def test_ssml_never_breaks_the_service(piper_server: str, document: tuple[str, float], speed: float) -> None:
    text, slowest_rate = document
    with httpx.Client(base_url=piper_server, timeout=120) as http:
        body = {"text": text, "speed": speed, "output_format": "pcm", "sample_rate": 8000}
        response = _post(http, "/api/tts", body)
        audio_s = float(response.headers["x-audio-duration"]) if response.status_code == 200 else None
        _check(response, text, audio_s, speed * slowest_rate)


@settings(FUZZ, max_examples=10)
@given(document=st.one_of(TEXT.map(lambda text: (text, 1.0)), SSML))
def test_the_openai_door_never_breaks_either(piper_server: str, document: tuple[str, float]) -> None:
    text, slowest_rate = document
    with httpx.Client(base_url=piper_server, timeout=120) as http:
        body = {
            "model": "tts-1",
            "input": text,
            "voice": "alloy",
            "response_format": "pcm",
            "sample_rate": 8000,
        }
        response = _post(http, "/v1/audio/speech", body)
        audio_s = len(response.content) / 2 / 8000 if response.status_code == 200 else None
        _check(response, text, audio_s, slowest_rate)
