"""Helpers for the gRPC tests: a live service with gRPC on a free port, and aio client calls."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx

from sentiric_tts.doors.grpc.contract import pb, pb_grpc
from tests.support.server import free_port, isolated_settings, running_server

T = TypeVar("T")


@dataclass(frozen=True)
class Service:
    http: str
    target: str

    def status(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.http}/api/status", timeout=30).json())

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include `labels`."""
        total = 0.0
        for line in httpx.get(f"{self.http}/metrics", timeout=30).text.splitlines():
            if line.startswith("#") or not (line.startswith(name + "{") or line.startswith(name + " ")):
                continue
            head, value = line.rsplit(" ", 1)
            if all(f'{key}="{wanted}"' in head for key, wanted in labels.items()):
                total += float(value)
        return total

    def wait_until_idle(self) -> int:
        """Bounded poll (not a timing assertion) until no synthesis job is in flight."""
        jobs = -1
        for _ in range(400):
            jobs = self.status()["jobs_in_flight"]
            if jobs == 0:
                break
            threading.Event().wait(0.05)
        return jobs


@contextmanager
def grpc_service(data_dir: Path, **overrides: object) -> Iterator[Service]:
    port = free_port()
    settings = isolated_settings(
        data_dir, grpc_enabled=True, grpc_host="127.0.0.1", grpc_port=port, **overrides
    )
    with running_server(settings) as url:
        yield Service(url, f"127.0.0.1:{port}")


def run(factory: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(factory())  # type: ignore[arg-type]


def stub(channel: grpc.aio.Channel) -> pb_grpc.TtsCoquiServiceStub:
    return pb_grpc.TtsCoquiServiceStub(channel)


async def unary(target: str, metadata: tuple[tuple[str, str], ...] = (), **fields: Any) -> bytes:
    async with grpc.aio.insecure_channel(target) as channel:
        response = await stub(channel).CoquiSynthesize(
            pb.CoquiSynthesizeRequest(**fields), metadata=metadata, timeout=120
        )
        return bytes(response.audio_content)


async def stream(
    target: str, metadata: tuple[tuple[str, str], ...] = (), **fields: Any
) -> list[pb.CoquiSynthesizeStreamResponse]:
    async with grpc.aio.insecure_channel(target) as channel:
        call = stub(channel).CoquiSynthesizeStream(
            pb.CoquiSynthesizeStreamRequest(**fields), metadata=metadata, timeout=120
        )
        return [message async for message in call]


def refusal(factory: Callable[[], Awaitable[object]]) -> grpc.aio.AioRpcError:
    """The error a call ends with (it must end with one)."""
    try:
        run(factory)
    except grpc.aio.AioRpcError as error:
        return error
    raise AssertionError("the call succeeded")


def joined_audio(messages: list[pb.CoquiSynthesizeStreamResponse]) -> bytes:
    """The stream's audio, after checking it ends with exactly one empty is_final message."""
    assert messages and messages[-1].is_final and not messages[-1].audio_chunk
    assert not any(message.is_final for message in messages[:-1])
    return b"".join(message.audio_chunk for message in messages[:-1])
