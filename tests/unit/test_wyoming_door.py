"""The Wyoming door on the fake engine: shutdown, and the bounded event reader."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from sentiric_tts.doors.wyoming.framing import DISCARD_CHUNK_BYTES, BadEvent, BoundedReader, read_event
from sentiric_tts.doors.wyoming.server import WyomingDoor
from sentiric_tts.doors.wyoming.voices import wyoming_language
from sentiric_tts.engines.base import EngineLost
from sentiric_tts.failures import ENGINE_UNAVAILABLE_MESSAGE
from tests.support.fake_engine import FakeEngine
from tests.support.fake_runtime import fake_runtime
from tests.support.server import free_port


@asynccontextmanager
async def door(tmp_path: Path, engine: FakeEngine) -> AsyncIterator[tuple[Any, int]]:
    port = free_port()
    with fake_runtime(tmp_path, engine, wyoming_host="127.0.0.1", wyoming_port=port) as (runtime, _):
        served = WyomingDoor(runtime.settings)
        await served.start(runtime)
        try:
            yield runtime, port
        finally:
            engine.release_all()
            await served.stop(1.0)


async def until(client: AsyncTcpClient, *last: str) -> list[Event]:
    events = []
    while True:
        event = await asyncio.wait_for(client.read_event(), 10)
        assert event is not None, [e.type for e in events]
        events.append(event)
        if event.type in last:
            return events


def test_shutdown_stops_accepting_and_lets_a_reply_finish(tmp_path: Path) -> None:
    engine = FakeEngine()
    gate = engine.hold("Finish me")

    async def go() -> tuple[list[str], bool]:
        async with door(tmp_path, engine) as (runtime, port), AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize("Finish me please.").event())
            await asyncio.to_thread(engine.wait_held, "Finish me")
            runtime.begin_shutdown()
            await asyncio.sleep(0.2)
            try:
                await asyncio.open_connection("127.0.0.1", port)
                refused = False
            except OSError:
                refused = True
            gate.set()
            return [e.type for e in await until(client, "audio-stop", "error")], refused

    types, refused = asyncio.run(go())
    assert refused
    assert types[0] == "audio-start" and types[-1] == "audio-stop"


def test_a_reply_past_the_grace_ends_with_an_error_event(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.hold("Never ends", after_chunks=1)

    async def go() -> list[Event]:
        async with door(tmp_path, engine) as (runtime, port), AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize("Never ends here.").event())
            await asyncio.to_thread(engine.wait_held, "Never ends")
            runtime.begin_shutdown()
            runtime.cut()
            return await until(client, "audio-stop", "error")

    events = asyncio.run(go())
    assert events[0].type == "audio-start"
    assert Error.from_event(events[-1]).code == "shutting_down"


def test_a_lost_engine_ends_the_reply_with_an_engine_unavailable_error_event(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.fail_on("Lost", after_chunks=1, error=EngineLost)

    async def go() -> list[Event]:
        async with door(tmp_path, engine) as (_, port), AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize("Lost in the middle of its audio.").event())
            return await until(client, "audio-stop", "error")

    events = asyncio.run(go())
    assert events[0].type == "audio-start" and "audio-chunk" in [e.type for e in events]
    error = Error.from_event(events[-1])
    assert (error.code, error.text) == ("engine_unavailable", ENGINE_UNAVAILABLE_MESSAGE)


def test_a_stream_speaks_its_sentence_then_says_it_shuts_down(tmp_path: Path) -> None:
    engine = FakeEngine()
    gate = engine.hold("First")

    async def go() -> list[Event]:
        async with door(tmp_path, engine) as (runtime, port), AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(SynthesizeStart().event())
            await client.write_event(SynthesizeChunk("First sentence here. Second one").event())
            await asyncio.to_thread(engine.wait_held, "First")
            runtime.begin_shutdown()
            await asyncio.sleep(0.1)
            gate.set()
            events = await until(client, "synthesize-stopped", "error")
            # The rest of the stream is dropped; a new request is refused while shutting down.
            await client.write_event(SynthesizeStop().event())
            await client.write_event(Synthesize("Again.").event())
            return events + await until(client, "audio-stop", "error")

    events = asyncio.run(go())
    types = [e.type for e in events]
    assert types[0] == "audio-start" and "audio-chunk" in types
    assert Error.from_event(events[-2]).code == "shutting_down"
    assert Error.from_event(events[-1]).code == "shutting_down"
    assert not any("Second" in text for text in engine.texts())


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("en", "en_US"),
        ("en-us", "en_US"),
        ("en_GB", "en_GB"),
        ("zh-cn", "zh_CN"),
        ("pt", "pt_BR"),
        ("xx", "xx"),
    ],
)
def test_language_codes_in_home_assistants_style(ours: str, theirs: str) -> None:
    assert wyoming_language(ours) == theirs


def test_the_reader_drains_an_oversized_payload_in_bounded_pieces() -> None:
    huge = 10 * 1024 * 1024

    async def go() -> tuple[BoundedReader, str, Event | None]:
        stream = asyncio.StreamReader(limit=2**16)
        reader = BoundedReader(stream, max_event_bytes=1024 * 1024)

        async def feed() -> None:
            stream.feed_data(json.dumps({"type": "ping", "payload_length": huge}).encode() + b"\n")
            block = b"\0" * (256 * 1024)
            for _ in range(huge // len(block)):
                stream.feed_data(block)
                await asyncio.sleep(0)
            stream.feed_data(b'{"type": "describe"}\n')
            stream.feed_eof()

        feeding = asyncio.create_task(feed())
        code = ""
        try:
            await read_event(reader)
        except BadEvent as exc:
            code = exc.code
        following = await read_event(reader)
        await feeding
        return reader, code, following

    reader, code, following = asyncio.run(go())
    assert code == "too_large"
    assert reader.discarded == huge
    assert reader.largest_read <= DISCARD_CHUNK_BYTES  # never more than a piece held
    assert following is not None and following.type == "describe"
