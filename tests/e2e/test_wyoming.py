"""The Wyoming door as Home Assistant drives it: a real server (Piper) and wyoming's own client.

Home Assistant's three sequences are replayed as its integration sends them (describe; one
`synthesize`; a stream of `synthesize-chunk`s with the backward-compatible `synthesize` before
`synthesize-stop`), and the WAV it would build from the reply is transcribed back.
"""

from __future__ import annotations

import asyncio
import io
import json
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from sentiric_tts.doors.wyoming.server import WyomingDoor
from tests.support.audio import pcm16, to_16k, to_float, word_error_rate
from tests.support.server import free_port, isolated_settings, running_server

VOICE = "en_US-joe-medium"
ONE_SHOT = "Turn on the kitchen lights. The front door is locked."
STREAMED = "The weather today is sunny and warm. Tomorrow will bring light rain in the afternoon."
MAX_EVENT = 256 * 1024
"""The test server's TTS_WYOMING_MAX_EVENT_BYTES (the StreamReader's line limit is 64 KiB)."""


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    wyoming_port = free_port()
    settings = isolated_settings(
        tmp_path_factory.mktemp("wyoming"),
        wyoming_enabled=True,
        wyoming_host="127.0.0.1",
        wyoming_port=wyoming_port,
        wyoming_max_event_bytes=MAX_EVENT,
    )
    with running_server(settings):
        yield wyoming_port


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


async def reply(client: AsyncTcpClient, last: tuple[str, ...] = ("audio-stop", "error")) -> list[Event]:
    """Events up to the one whose type is in `last`."""
    events = []
    while True:
        event = await client.read_event()
        assert event is not None, f"connection closed after {[e.type for e in events]}"
        events.append(event)
        if event.type in last:
            return events


def home_assistant_wav(events: list[Event]) -> tuple[bytes, int]:
    """The WAV Home Assistant writes: its parameters from the first audio-start, then every chunk.
    The reply's format may not change within it."""
    start = AudioStart.from_event(next(e for e in events if AudioStart.is_type(e.type)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setframerate(start.rate)
        wav.setsampwidth(start.width)
        wav.setnchannels(start.channels)
        for event in events:
            if AudioChunk.is_type(event.type):
                chunk = AudioChunk.from_event(event)
                assert (chunk.rate, chunk.width, chunk.channels) == (start.rate, start.width, start.channels)
                wav.writeframes(chunk.audio)
    assert (start.width, start.channels) == (2, 1)
    return buffer.getvalue(), start.rate


def heard(events: list[Event], transcribe: Any) -> str:
    wav_bytes, rate = home_assistant_wav(events)
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        assert wav.getframerate() == rate
        frames = wav.readframes(wav.getnframes())
    assert len(frames) > rate  # more than half a second
    return str(transcribe(to_16k(to_float(pcm16(frames)), rate)))


def types(events: list[Event]) -> list[str]:
    """Event types with runs of audio-chunk collapsed."""
    collapsed: list[str] = []
    for event in events:
        if not (event.type == "audio-chunk" and collapsed and collapsed[-1] == "audio-chunk"):
            collapsed.append(event.type)
    return collapsed


# --- Home Assistant's sequences ---


def test_describe_lists_one_streaming_program_with_voices_by_language(port: int) -> None:
    async def go() -> Info:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            event = await client.read_event()
            assert event is not None and Info.is_type(event.type)
            return Info.from_event(event)

    info = run(go())
    (program,) = info.tts
    assert program.installed and program.supports_synthesize_streaming
    assert program.version and program.attribution.name and program.attribution.url
    assert program.voices and all(voice.installed for voice in program.voices)
    joe = next(voice for voice in program.voices if voice.name == VOICE)
    assert joe.languages == ["en_US"]
    assert joe.attribution.name and joe.description


def test_one_shot_synthesize_as_home_assistant_sends_it(port: int, transcribe: Any) -> None:
    async def go() -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize(ONE_SHOT, voice=SynthesizeVoice(name=VOICE)).event())
            return await reply(client)

    events = run(go())
    assert types(events) == ["audio-start", "audio-chunk", "audio-stop"]
    assert word_error_rate(ONE_SHOT, heard(events, transcribe)) <= 0.10


def test_streaming_as_home_assistant_sends_it(port: int, transcribe: Any) -> None:
    # An LLM's tokens: sentences split mid-word, then HA's full-text copy for older servers.
    pieces = [
        "The wea",
        "ther today is sun",
        "ny and warm. Tomor",
        "row will bring light ",
        "rain in the after",
        "noon.",
    ]
    assert "".join(pieces) == STREAMED

    async def go() -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", port) as client:

            async def send() -> None:
                await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name=VOICE)).event())
                for piece in pieces:
                    await client.write_event(SynthesizeChunk(piece).event())
                    await asyncio.sleep(0.05)
                await client.write_event(Synthesize(STREAMED, voice=SynthesizeVoice(name=VOICE)).event())
                await client.write_event(SynthesizeStop().event())

            sending = asyncio.create_task(send())
            events = await reply(client, ("synthesize-stopped", "error"))
            await sending
            # Nothing more: the copy was not spoken a second time.
            await client.write_event(Describe().event())
            after = await client.read_event()
            assert after is not None and Info.is_type(after.type)
            return events

    events = run(go())
    assert types(events) == ["audio-start", "audio-chunk", "audio-stop", "synthesize-stopped"]
    assert SynthesizeStopped.is_type(events[-1].type) and AudioStop.is_type(events[-2].type)
    text = heard(events, transcribe)
    assert word_error_rate(STREAMED, text) <= 0.10, text


# --- voices ---


@pytest.mark.parametrize("voice", [SynthesizeVoice(language="en_US"), SynthesizeVoice(language="en")])
def test_voice_by_language(port: int, voice: SynthesizeVoice) -> None:
    async def go() -> list[Event]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize("Hello there.", voice=voice).event())
            return await reply(client)

    assert types(run(go())) == ["audio-start", "audio-chunk", "audio-stop"]


def test_unknown_voice_is_an_error_and_the_connection_goes_on(port: int) -> None:
    async def go() -> tuple[list[Event], list[Event], list[Event], list[Event]]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize("Hello.", voice=SynthesizeVoice(name="nobody")).event())
            unknown = await reply(client)
            await client.write_event(Synthesize("Hello.", voice=SynthesizeVoice(language="xx_XX")).event())
            language = await reply(client)
            # A stream that fails at its start: its chunks, copy and stop are dropped.
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="nobody")).event())
            failed = await reply(client)
            for event in (SynthesizeChunk("Hello. "), Synthesize("Hello. "), SynthesizeStop()):
                await client.write_event(event.event())
            await client.write_event(Synthesize("Hello there.", voice=SynthesizeVoice(name=VOICE)).event())
            return unknown, language, failed, await reply(client)

    unknown, language, failed, fine = run(go())
    assert [e.type for e in unknown] == ["error"]
    assert Error.from_event(unknown[0]).code == "unknown_voice"
    assert "nobody" in Error.from_event(unknown[0]).text
    assert Error.from_event(language[0]).code == "unsupported_language"
    assert Error.from_event(failed[0]).code == "unknown_voice"
    assert types(fine) == ["audio-start", "audio-chunk", "audio-stop"]


def test_empty_text_and_missing_text(port: int) -> None:
    async def go() -> list[list[Event]]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            replies = []
            for event in (Synthesize("   ").event(), Event("synthesize", {"voice": {"name": VOICE}})):
                await client.write_event(event)
                replies.append(await reply(client))
            # An empty stream: the audio is empty, its framing complete.
            await client.write_event(SynthesizeStart().event())
            await client.write_event(SynthesizeStop().event())
            replies.append(await reply(client, ("synthesize-stopped", "error")))
            await client.write_event(Synthesize("Fine.").event())
            replies.append(await reply(client))
            return replies

    empty, missing, empty_stream, fine = run(go())
    assert Error.from_event(empty[0]).code == "empty_text"
    assert Error.from_event(missing[0]).code == "invalid_request"
    assert types(empty_stream) == ["audio-start", "audio-stop", "synthesize-stopped"]
    assert types(fine) == ["audio-start", "audio-chunk", "audio-stop"]


# --- what is not an event ---


async def raw(port: int, data: bytes, answers: int) -> list[dict[str, Any]]:
    """Send raw bytes, then a describe; the error events before the info."""
    from wyoming.event import async_read_event

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await async_write_event(Describe().event(), writer)
        errors = []
        while True:
            event = await async_read_event(reader)
            assert event is not None, f"closed after {errors}"
            if Info.is_type(event.type):
                break
            assert Error.is_type(event.type), event
            errors.append(event.data)
        assert len(errors) == answers, errors
        return errors
    finally:
        writer.close()


def test_garbage_gets_error_events_and_the_connection_goes_on(port: int) -> None:
    payload = b"x" * 100
    bad_data = json.dumps({"type": "synthesize", "data_length": 5, "payload_length": 100}).encode()
    garbage = b"".join(
        [
            b"this is not json\n",
            b'{"type": "no-such-event"}\n',
            b"[1, 2, 3]\n",
            b'{"data": {"text": "no type"}}\n',
            bad_data + b"\n" + b"{nope" + payload,  # data that is not JSON, a payload after it
            b'{"type": "synthesize-chunk", "data": {"text": "outside a stream"}}\n',
        ]
    )
    errors = run(raw(port, garbage, 6))
    codes = [error["code"] for error in errors]
    assert codes == [
        "invalid_event",
        "unknown_event",
        "invalid_event",
        "invalid_event",
        "invalid_event",
        "not_started",
    ]
    assert all(error["text"] for error in errors)


def test_a_payload_over_the_limit_is_read_past_not_held(port: int) -> None:
    huge = 10 * 1024 * 1024
    header = json.dumps({"type": "synthesize", "data": {"text": "Hi."}, "payload_length": huge}).encode()
    big_data = json.dumps({"type": "synthesize", "data_length": 2 * MAX_EVENT}).encode()
    errors = run(
        raw(port, header + b"\n" + b"\0" * huge + big_data + b"\n" + b"{" + b" " * (2 * MAX_EVENT - 1), 2)
    )
    assert [error["code"] for error in errors] == ["too_large", "too_large"]
    assert str(huge) in errors[0]["text"]


def test_a_header_line_over_the_reader_limit(port: int) -> None:
    line = b'{"type": "synthesize", "data": {"text": "' + b"a" * 200_000 + b'"}}\n'
    (error,) = run(raw(port, line, 1))
    assert error["code"] == "too_large"


def test_a_header_line_over_the_event_limit_closes_the_connection(port: int) -> None:
    from wyoming.event import async_read_event

    async def go() -> tuple[Event | None, Event | None]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"{" + b" " * (MAX_EVENT + 200_000))
            await writer.drain()
            return await async_read_event(reader), await async_read_event(reader)
        finally:
            writer.close()

    error, after = run(go())
    assert error is not None and Error.from_event(error).code == "too_large"
    assert after is None


def test_off_by_setting(tmp_path: Path) -> None:
    from sentiric_tts.settings import Settings

    assert Settings(_env_file=None).wyoming.enabled  # type: ignore[call-arg]
    assert WyomingDoor.configure(isolated_settings(tmp_path)) is None
    assert WyomingDoor.configure(isolated_settings(tmp_path, wyoming_enabled=True)) is not None
