"""A request's opening sentence is cut after its first clause where that brings its first audio
sooner: on an engine that renders a segment at once (Piper with TTS_PIPER_STREAM_FIRST_FRAMES=0),
for a listener who is waiting. Piper by default decodes a sentence in pieces instead, like XTTS:
then nothing is cut."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sentiric_tts.engines.base import GenerationParams
from sentiric_tts.runtime import Runtime
from sentiric_tts.synthesis.continuous import ListenerClock
from sentiric_tts.synthesis.request import SynthesisRequest
from sentiric_tts.synthesis.text import CLAUSE_PAUSE_S
from tests.support.audio import parse_wav, to_16k, word_error_rate
from tests.support.server import isolated_settings, running_server
from tests.support.transcribe import Transcriber

OPENING = "Thanks for calling the city library, how can I help you today? The reading room is open today."


@pytest.fixture(scope="module")
def piper_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    settings = isolated_settings(tmp_path_factory.mktemp("first-segment"), piper_stream_first_frames=0)
    runtime = Runtime.build(settings)
    yield runtime
    runtime.stop()


def segment_texts(runtime: Runtime, request: SynthesisRequest) -> list[str]:
    return [segment.text for segment in runtime.pipeline.plan(request).segments]


def test_the_opening_sentence_is_cut_after_its_first_clause(piper_runtime: Runtime) -> None:
    plan = piper_runtime.pipeline.plan(SynthesisRequest(text=OPENING))
    assert [segment.text for segment in plan.segments] == [
        "Thanks for calling the city library,",
        "how can I help you today?",
        "The reading room is open today.",
    ]
    # The cut is spoken as the comma it is; the next sentence gets the sentence pause.
    assert [segment.pause_before_s for segment in plan.segments] == [None, CLAUSE_PAUSE_S, None]
    # Faster speech has shorter commas: the cut sentence keeps its whole length / speed.
    fast = piper_runtime.pipeline.plan(SynthesisRequest(text=OPENING, params=GenerationParams(speed=2.0)))
    assert fast.segments[1].pause_before_s == pytest.approx(CLAUSE_PAUSE_S / 2)


def test_only_the_opening_sentence_of_a_request_is_cut(piper_runtime: Runtime) -> None:
    text = "Yes. Thanks for calling the city library, how can I help you today?"
    # The first segment is short already: the first audio does not wait for the second sentence.
    assert segment_texts(piper_runtime, SynthesisRequest(text=text)) == [
        "Yes.",
        "Thanks for calling the city library, how can I help you today?",
    ]


def test_nothing_is_cut_when_no_listener_waits_or_the_setting_is_off(tmp_path: Path) -> None:
    runtime = Runtime.build(isolated_settings(tmp_path, first_segment_chars=0, piper_stream_first_frames=0))
    try:
        assert segment_texts(runtime, SynthesisRequest(text=OPENING))[0] == (
            "Thanks for calling the city library, how can I help you today?"
        )
    finally:
        runtime.stop()


def test_a_sentence_that_continues_speech_is_not_cut(piper_runtime: Runtime) -> None:
    request = SynthesisRequest(text=OPENING, opens_speech=False)
    assert segment_texts(piper_runtime, request)[0] == (
        "Thanks for calling the city library, how can I help you today?"
    )


def test_ssml_openings_are_cut_too(piper_runtime: Runtime) -> None:
    ssml = f'<speak><break time="300ms"/><prosody rate="90%">{OPENING}</prosody></speak>'
    assert segment_texts(piper_runtime, SynthesisRequest(text=ssml))[:2] == [
        "Thanks for calling the city library,",
        "how can I help you today?",
    ]


@pytest.mark.parametrize("engine", ["piper", "xtts"])
def test_an_engine_that_streams_inside_a_segment_is_not_cut(
    tmp_path: Path, xtts_dir: Path, engine: str
) -> None:
    extra = {"xtts_model_dir": xtts_dir, "xtts_device": "cpu"} if engine == "xtts" else {}
    runtime = Runtime.build(isolated_settings(tmp_path, engine=engine, **extra))
    try:
        assert runtime.engine.streams_within_segment
        assert segment_texts(runtime, SynthesisRequest(text=OPENING, language="en"))[0] == (
            "Thanks for calling the city library, how can I help you today?"
        )
    finally:
        runtime.stop()


def _heard(base_url: str, transcribe: Transcriber) -> str:
    response = httpx.post(f"{base_url}/api/tts", json={"text": OPENING}, timeout=120)
    assert response.status_code == 200, response.text
    rate, _, samples = parse_wav(response.content)
    return transcribe(to_16k(samples, rate))


def test_an_opening_decoded_in_pieces_reads_right(piper_server: str, transcribe: Transcriber) -> None:
    heard = _heard(piper_server, transcribe)
    assert word_error_rate(OPENING, heard) <= 0.15, heard


def test_a_cut_opening_still_reads_right(tmp_path: Path, transcribe: Transcriber) -> None:
    with running_server(isolated_settings(tmp_path, piper_stream_first_frames=0)) as base_url:
        heard = _heard(base_url, transcribe)
    assert word_error_rate(OPENING, heard) <= 0.15, heard


def test_the_listener_clock_tells_when_sent_audio_has_played_out() -> None:
    clock = ListenerClock()
    assert clock.waiting(now=100.0)  # nothing sent: the listener waits for the first audio
    clock.sent(2.0, now=100.0)
    clock.sent(1.0, now=100.5)  # arrives while the first still plays: queued behind it
    assert not clock.waiting(now=102.9)
    assert clock.waiting(now=103.0)
    clock.sent(1.0, now=110.0)  # after a gap the listener plays at once
    assert not clock.waiting(now=110.5)
    clock.dropped()  # a cancel: the listener drops what it had queued
    assert clock.waiting(now=110.5)


def test_a_long_opening_sentence_is_heard_from_its_first_piece(tmp_path: Path) -> None:
    """Through the whole pipeline (scheduler, joins, loudness, encoder): the stream's first audio
    is the sentence's first decoded piece, not the sentence, and the pieces add up to it all."""
    sentence = (
        "Thank you for calling the support line of the city library where the reading room is open "
        "every day from nine in the morning until eight in the evening."
    )
    runtime = Runtime.build(isolated_settings(tmp_path))
    runtime.start()

    async def audio_chunks(request: SynthesisRequest) -> list[int]:
        stream = await runtime.start_speech(request, "test-client", door="test")
        return [len(chunk) // 2 async for chunk in stream.chunks() if chunk]

    try:
        assert runtime.engine.streams_within_segment
        request = SynthesisRequest(text=sentence, output_format="pcm")
        assert len(runtime.pipeline.plan(request).segments) == 1
        streamed = asyncio.run(audio_chunks(request))
    finally:
        runtime.stop()
    rate = runtime.engine.sample_rate
    total = sum(streamed)
    assert total > 5 * rate  # one sentence of several seconds
    # The first piece is 48 frames of 256 samples (~0.56 s), give or take the trimmed lead-in.
    assert 0.2 * rate < streamed[0] < 0.6 * rate, streamed[:3]
