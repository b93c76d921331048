"""Clients that keep speaking to a service while it is redeployed (tests/e2e/test_cluster_rollout.py):
each in a loop through HTTP doors (a whole WAV, a streamed WAV, OpenAI's speech) and, when given a
target, one more through gRPC's streaming call. Every outcome is kept whole, to be checked after."""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx

from sentiric_tts.doors.grpc.contract import pb
from tests.support.audio import parse_wav
from tests.support.grpc_client import joined_audio, run, stub

TEXT = "The quick brown fox jumps over the lazy dog near the river bank. Then it ran all the way home."
"""Two sentences: two engine calls per request, so a request can span a replica change."""

TELEPHONY = {"output_format": "pcm", "sample_rate": 16000}
# The HTTP doors a client goes through in turn: a whole WAV (its sizes in its header), a streamed
# WAV, and OpenAI's speech (a streamed WAV, as OpenAI sends it).
REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "whole": ("/api/tts", {"text": TEXT}),
    "stream": ("/api/tts", {"text": TEXT, "stream": True}),
    "openai": (
        "/v1/audio/speech",
        {"model": "tts-1", "input": TEXT, "voice": "alloy", "response_format": "wav"},
    ),
}
DOORS = tuple(REQUESTS)
_UNKNOWN_SIZE = 0xFFFFFFFF  # a streamed WAV's sizes: its data runs to the end of the body


@dataclass
class Outcome:
    door: str  # one of DOORS, or "grpc"
    phase_started: int
    phase_ended: int = -1
    ok: bool = False
    body: bytes = b""  # HTTP: the response body; gRPC: the joined 16 kHz PCM
    error: str = ""
    refused: bool = False
    """gRPC only: UNAVAILABLE before any audio, the status a client retries elsewhere or later."""

    def duration_s(self) -> float:
        """The audio's length, after checking it is whole: a whole WAV holds exactly the data its
        header announces; a streamed one ended with its chunked body's terminator (httpx raised
        otherwise, and `error` holds it); a gRPC stream ended with its final message."""
        if self.door == "grpc":
            return len(self.body) / 2 / TELEPHONY["sample_rate"]
        rate, channels, samples = parse_wav(self.body)
        riff_size = struct.unpack("<I", self.body[4:8])[0]
        if self.door == "whole":
            assert riff_size == len(self.body) - 8, "WAV shorter or longer than its header says"
            data_at = self.body.index(b"data", 12) + 8
            data_size = struct.unpack("<I", self.body[data_at - 4 : data_at])[0]
            assert data_size == len(self.body) - data_at, "WAV data cut short"
        else:
            assert riff_size == _UNKNOWN_SIZE, riff_size
        return len(samples) / (rate * channels)


async def _grpc_call(target: str, outcome: Outcome) -> None:
    # wait_for_ready: while no server listens (no ingress yet), the call waits rather than fail.
    async with grpc.aio.insecure_channel(target) as channel:
        call = stub(channel).CoquiSynthesizeStream(
            pb.CoquiSynthesizeStreamRequest(text=TEXT, language_code="en", **TELEPHONY),
            timeout=300,
            wait_for_ready=True,
        )
        messages: list[pb.CoquiSynthesizeStreamResponse] = []
        try:
            async for message in call:
                messages.append(message)
        except grpc.aio.AioRpcError as error:
            heard = any(message.audio_chunk for message in messages)
            outcome.refused = error.code() == grpc.StatusCode.UNAVAILABLE and not heard
            outcome.error = f"{error.code().name} after {len(messages)} messages: {error.details()}"
            return
        outcome.body = joined_audio(messages)
        outcome.ok = True


@dataclass
class Load:
    """`clients` HTTP clients (and one gRPC client when `grpc_target` is set) in loops until
    stopped. `phase` is the test's step (0 before the update, 1 during it, 2 after): each outcome
    records the steps its request started and ended in."""

    url: str
    grpc_target: str | None = None
    phase: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def http_client(self, index: int) -> None:
        turn = index
        while not self.stop.is_set():
            outcome = Outcome(DOORS[turn % len(DOORS)], self.phase)
            turn += 1
            path, body = REQUESTS[outcome.door]
            try:
                with httpx.stream("POST", f"{self.url}{path}", json=body, timeout=300) as response:
                    outcome.body = b"".join(response.iter_bytes())
                    outcome.ok = response.status_code == 200
                    if not outcome.ok:
                        outcome.error = f"HTTP {response.status_code}: {outcome.body[:300]!r}"
            except httpx.HTTPError as exc:  # refused, reset, or a chunked body cut short
                outcome.error = repr(exc)
            self._record(outcome)

    def grpc_client(self) -> None:
        target = self.grpc_target
        assert target is not None
        while not self.stop.is_set():
            outcome = Outcome("grpc", self.phase)
            run(lambda outcome=outcome: _grpc_call(target, outcome))  # type: ignore[misc]
            self._record(outcome)
            if outcome.refused:  # the old ingress is shutting down: retry a little later
                self.stop.wait(0.5)

    def _record(self, outcome: Outcome) -> None:
        outcome.phase_ended = self.phase
        with self._lock:
            self.outcomes.append(outcome)

    def ended_in(self, phase: int, door: str | None = None) -> list[Outcome]:
        with self._lock:
            return [
                outcome
                for outcome in self.outcomes
                if outcome.phase_ended == phase and door in (None, outcome.door)
            ]
