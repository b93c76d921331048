"""/ws/tts with a real WebSocket client: incremental text in, audio frames and events out."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from sentiric_tts.synthesis.incremental import SentenceBuffer
from tests.support.audio import parse_wav, pcm16, silent_runs, speech_span, to_16k, to_float, word_error_rate
from tests.support.server import isolated_settings, running_server

TEXT = (
    "Thank you for waiting. Your table for four is ready now. "
    "Please follow me to the terrace, where it is warm."
)
RATE = 16000


def ws_url(base: str, query: str = "") -> str:
    return base.replace("http://", "ws://") + "/ws/tts" + query


def llm_tokens(text: str) -> list[str]:
    """Pieces the way an LLM streams them: words with their leading space, long ones cut in two."""
    tokens: list[str] = []
    for word in re.findall(r"\s*\S+", text):
        if len(word) > 6:
            tokens.extend([word[:4], word[4:]])
        else:
            tokens.append(word)
    return tokens


def send(ws: ClientConnection, **message: Any) -> None:
    ws.send(json.dumps(message))


def next_event(ws: ClientConnection, timeout: float = 120) -> dict[str, Any]:
    """The next JSON event, skipping audio frames."""
    while True:
        frame = ws.recv(timeout)
        if isinstance(frame, str):
            return json.loads(frame)


def start(ws: ClientConnection, **options: Any) -> dict[str, Any]:
    send(ws, type="start", format="pcm", sample_rate=RATE, **options)
    event = next_event(ws)
    assert event["type"] == "started", event
    return event


def collect(ws: ClientConnection, timeout: float = 120) -> tuple[bytes, list[dict[str, Any]]]:
    """Audio bytes and events until `done`."""
    audio = bytearray()
    events: list[dict[str, Any]] = []
    while True:
        frame = ws.recv(timeout)
        if isinstance(frame, bytes):
            audio.extend(frame)
            continue
        event = json.loads(frame)
        events.append(event)
        assert event["type"] != "error", event
        if event["type"] == "done":
            return bytes(audio), events


@pytest.fixture()
def ws(piper_server: str) -> Iterator[ClientConnection]:
    with connect(ws_url(piper_server), open_timeout=30) as connection:
        yield connection


def speak(base: str, pieces: list[str]) -> tuple[bytes, list[dict[str, Any]]]:
    with connect(ws_url(base)) as connection:
        start(connection)
        for piece in pieces:
            send(connection, type="text", text=piece)
        send(connection, type="close")
        return collect(connection)


def test_token_by_token_gives_the_same_speech_as_the_whole_text(piper_server: str, transcribe) -> None:  # type: ignore[no-untyped-def]
    by_tokens, token_events = speak(piper_server, llm_tokens(TEXT))
    whole, whole_events = speak(piper_server, [TEXT])

    def sentences(events: list[dict[str, Any]]) -> list[str]:
        return [event["text"] for event in events if event["type"] == "sentence_started"]

    assert (
        sentences(token_events)
        == sentences(whole_events)
        == [
            "Thank you for waiting.",
            "Your table for four is ready now.",
            "Please follow me to the terrace, where it is warm.",
        ]
    )
    for audio in (by_tokens, whole):
        assert word_error_rate(TEXT, transcribe(to_16k(to_float(pcm16(audio)), RATE))) <= 0.15
    assert abs(len(by_tokens) - len(whole)) <= 0.02 * len(whole)
    done = token_events[-1]
    assert done["sentences"] == 3
    assert done["audio_seconds"] == pytest.approx(len(by_tokens) / 2 / RATE, abs=1e-3)


def test_events_carry_offsets_in_order(ws: ClientConnection) -> None:
    start(ws)
    send(ws, type="text", text=TEXT)
    send(ws, type="close")
    audio, events = collect(ws)
    finished = [event for event in events if event["type"] == "sentence_finished"]
    started = [event for event in events if event["type"] == "sentence_started"]
    assert [event["sentence"] for event in started] == [0, 1, 2]
    offsets = [event["audio_offset"] for event in started]
    assert offsets[0] == 0.0 and offsets == sorted(offsets)
    for begin, end in zip(started, finished, strict=True):
        assert end["duration"] > 0.5
        assert end["audio_offset"] == pytest.approx(begin["audio_offset"] + end["duration"], abs=1e-3)
    assert finished[-1]["audio_offset"] == pytest.approx(len(audio) / 2 / RATE, abs=1e-3)


def test_first_audio_arrives_before_the_last_token_is_sent(ws: ClientConnection, transcribe) -> None:  # type: ignore[no-untyped-def]
    tokens = llm_tokens(TEXT)
    # The first sentence is complete once the token after its period has arrived.
    first_end = next(index for index, token in enumerate(tokens) if token.endswith("."))
    start(ws)
    for token in tokens[: first_end + 2]:
        send(ws, type="text", text=token)
    frame = ws.recv(120)
    while isinstance(frame, str):
        assert json.loads(frame)["type"] == "sentence_started"
        frame = ws.recv(120)
    assert isinstance(frame, bytes) and frame  # speech, while most of the reply is still unsent
    remaining = tokens[first_end + 2 :]
    assert len(remaining) > 10
    for token in remaining:
        send(ws, type="text", text=token)
    send(ws, type="close")
    rest, _ = collect(ws)
    audio = frame + rest
    assert word_error_rate(TEXT, transcribe(to_16k(to_float(pcm16(audio)), RATE))) <= 0.15


def test_cancel_stops_speech_and_drops_queued_text(
    ws: ClientConnection, piper_server: str, transcribe
) -> None:  # type: ignore[no-untyped-def]
    long_text = " ".join(f"This is sentence number {n} of a long answer." for n in range(1, 9))
    start(ws)
    send(ws, type="text", text=long_text)
    send(ws, type="flush")
    while not isinstance(ws.recv(120), bytes):
        pass
    send(ws, type="cancel")
    event = next_event(ws)
    while event["type"] != "cancelled":
        assert event["type"] in ("sentence_started", "sentence_finished", "mark"), event
        event = next_event(ws)
    assert event["dropped_sentences"] >= 5
    # The session goes on: new text is spoken, and only it.
    send(ws, type="text", text="Goodbye for now.")
    send(ws, type="close")
    audio, events = collect(ws)
    assert [e["text"] for e in events if e["type"] == "sentence_started"] == ["Goodbye for now."]
    assert word_error_rate("Goodbye for now.", transcribe(to_16k(to_float(pcm16(audio)), RATE))) <= 0.34
    # The cancelled sentence's engine job is gone once its current engine call returns (the
    # worker closes it before its next chunk): a bounded wait, not a race with that call.
    deadline = time.monotonic() + 30
    while (in_flight := httpx.get(f"{piper_server}/api/status").json()["jobs_in_flight"]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert in_flight == 0


def test_bad_messages_get_error_events_and_the_socket_stays_usable(ws: ClientConnection, transcribe) -> None:  # type: ignore[no-untyped-def]
    ws.send("this is not json")
    assert next_event(ws)["code"] == "invalid_message"
    send(ws, type="text", text="Too early.")
    assert next_event(ws)["code"] == "not_started"
    send(ws, type="sing")
    bad_type = next_event(ws)
    assert bad_type["code"] == "invalid_message" and "sing" in bad_type["message"]
    send(ws, type="start", voice="nobody")
    unknown_voice = next_event(ws)
    assert unknown_voice["code"] == "unknown_voice" and "nobody" in unknown_voice["message"]
    send(ws, type="start", format="wma")
    assert next_event(ws)["code"] == "unsupported_format"
    send(ws, type="start", params={"speed": 10})
    too_fast = next_event(ws)
    assert too_fast["code"] == "invalid_message" and too_fast["param"] == "params.speed"
    ws.send(b"\x00\x01")
    assert next_event(ws)["code"] == "invalid_message"

    start(ws)
    send(ws, type="start")
    assert next_event(ws)["code"] == "already_started"
    send(ws, type="text", txt="typo")
    assert next_event(ws)["code"] == "invalid_message"
    # A sentence whisper tiny hears right in every rendering tried ("all is well" is always heard
    # as "all as well", leaving no room for Piper's sampling noise).
    send(ws, type="text", text="Good morning, the train leaves at noon.")
    send(ws, type="close")
    audio, _ = collect(ws)
    assert (
        word_error_rate(
            "Good morning, the train leaves at noon.", transcribe(to_16k(to_float(pcm16(audio)), RATE))
        )
        <= 0.2
    )


def test_ssml_fragments_at_sentence_granularity(ws: ClientConnection, transcribe) -> None:  # type: ignore[no-untyped-def]
    send(ws, type="start", format="wav", sample_rate=RATE, text_type="ssml")
    assert next_event(ws)["type"] == "started"
    for piece in [
        'Hello <mark name="greeted"/>',
        "there. Wait",
        ' <break time="900ms"/> for it. ',
        "Done now.",
    ]:
        send(ws, type="text", text=piece)
    send(ws, type="close")
    audio, events = collect(ws)
    rate, channels, samples = parse_wav(audio)
    assert (rate, channels) == (RATE, 1)
    marks = [event for event in events if event["type"] == "mark"]
    assert [mark["name"] for mark in marks] == ["greeted"]
    assert 0.2 < marks[0]["audio_offset"] < 1.5
    assert max(silent_runs(to_float(samples), rate)) >= 0.8
    # The mark cuts "Hello" into a segment of its own (an engine cannot mark inside a segment),
    # and Whisper tiny mishears a lone word now and then ("Oh, oh"): so the speech before the mark
    # is checked to be there, and the words after it are transcribed.
    at_mark = round(marks[0]["audio_offset"] * rate)
    assert speech_span(to_float(samples[:at_mark]), rate) > 0.15
    heard = transcribe(to_16k(to_float(samples[at_mark:]), rate))
    assert word_error_rate("there. Wait for it. Done now.", heard) <= 0.2


def test_a_client_that_does_not_read_stops_its_synthesis(piper_server: str) -> None:
    sentences = [f"Here is sentence number {n}, which the client does not read yet." for n in range(1, 31)]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, as a stalled reader has
    sock.connect(("127.0.0.1", int(piper_server.rsplit(":", 1)[1])))
    with connect(ws_url(piper_server), sock=sock, max_queue=1, compression=None) as connection:
        send(connection, type="start", format="pcm", sample_rate=48000)
        send(connection, type="text", text=" ".join(sentences))
        send(connection, type="close")

        def websocket_audio_seconds() -> float:
            metrics = httpx.get(f"{piper_server}/metrics").text
            found = re.search(r'^tts_audio_seconds_total\{door="websocket"\} (\S+)$', metrics, re.M)
            return float(found.group(1)) if found else 0.0

        # Wait until the session stalls: its audio counter stops moving while nothing is read.
        baseline = websocket_audio_seconds()  # other tests' sessions on this server
        previous, current = -1.0, baseline
        while current == baseline or current != previous:
            time.sleep(1.0)
            previous, current = current, websocket_audio_seconds()
        status = httpx.get(f"{piper_server}/api/status").json()
        # At most the sentence in progress waits for its reader; nothing runs ahead of it.
        assert status["jobs_in_flight"] <= 1
        assert current - baseline < 0.5 * len(sentences) * 3.0  # far from all 30 sentences (~3 s each)

        audio, events = collect(connection)  # reading resumes: everything arrives
    assert sum(event["type"] == "sentence_finished" for event in events) == len(sentences)
    assert len(audio) / 2 / 48000 > len(sentences) * 2.5


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = isolated_settings(
        tmp_path_factory.mktemp("ws-guarded"), api_keys="k-secret", ws_max_pending_chars=100
    )
    with running_server(settings) as url:
        yield url


def test_auth_by_header_or_query(guarded_server: str) -> None:
    with connect(ws_url(guarded_server)) as refused:
        event = json.loads(refused.recv(30))
        assert event["code"] == "unauthorized" and "API key" in event["message"]
        with pytest.raises(ConnectionClosed) as closed:
            refused.recv(30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    with connect(
        ws_url(guarded_server), additional_headers={"Authorization": "Bearer k-secret"}
    ) as by_header:
        start(by_header)
    with connect(ws_url(guarded_server, "?api_key=k-secret")) as by_query:
        start(by_query)


def test_text_beyond_the_pending_limit_is_refused_not_lost(guarded_server: str) -> None:
    with connect(ws_url(guarded_server, "?api_key=k-secret")) as connection:
        start(connection)
        send(connection, type="text", text="word " * 30)  # 150 characters > 100
        refused = next_event(connection)
        assert refused["code"] == "text_buffer_full" and "was not taken" in refused["message"]
        send(connection, type="text", text="Short and sweet.")
        send(connection, type="close")
        audio, events = collect(connection)
    assert [e["text"] for e in events if e["type"] == "sentence_started"] == ["Short and sweet."]
    assert len(audio) > RATE  # more than half a second of speech


def test_sentence_buffer_cuts() -> None:
    buffer = SentenceBuffer(max_chars=40)
    released = [
        s for token in llm_tokens("Dr. Smith paid 3.5 dollars! How are you? Fine") for s in buffer.add(token)
    ]
    assert released == ["Dr. Smith paid 3.5 dollars!", "How are you?"]  # " Fine" completed the second
    assert buffer.flush() == ["Fine"]
    assert buffer.add("a run of words with no ending that goes on and on and on ") == [
        "a run of words with no ending that goes"
    ]
    assert buffer.flush() == ["on and on and on"]
    assert SentenceBuffer(160).add("你好。今天") == ["你好。"]
    ssml = SentenceBuffer(160, ssml=True)
    assert ssml.add('<prosody rate="slow">One. Two. ') == []  # never cut inside an element
    assert ssml.add('</prosody> Three. <break time="1s"/>') == [
        '<prosody rate="slow">One. Two. </prosody> Three.'
    ]
    assert ssml.flush() == ['<break time="1s"/>']
