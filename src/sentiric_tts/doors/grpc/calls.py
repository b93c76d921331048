"""What every gRPC call gets around its work: a request id, a status from its failure, one log line.

The request id comes from `x-request-id` or `x-trace-id` metadata (else a new one), is sent back
as `x-request-id` initial metadata and is on every log line written during the call, as on HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import grpc

from sentiric_tts.doors.grpc.status import refusal_for
from sentiric_tts.observability.context import choose_request_id, request_id_var
from sentiric_tts.observability.metrics import ServiceMetrics
from sentiric_tts.observability.record import stream_log_fields, write_access_line
from sentiric_tts.synthesis.stream import AudioStream

access_log = logging.getLogger("sentiric_tts.access")


def peer_host(peer: str) -> str:
    """The address part of grpc's peer string ("ipv4:1.2.3.4:5", "ipv6:[::1]:5", URI-encoded)."""
    kind, _, rest = unquote(peer or "").partition(":")
    if kind in ("ipv4", "ipv6") and rest:
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer or "unknown"


def metadata_of(context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
    """Text metadata by lower-case key (binary `-bin` entries are left out)."""
    return {
        key.lower(): value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)
    }


@dataclass
class CallRecord:
    """One call, as its log line and metrics see it."""

    rpc: str
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    code: grpc.StatusCode = grpc.StatusCode.OK
    audio: AudioStream | None = None

    def write(self, metrics: ServiceMetrics) -> None:
        seconds = time.perf_counter() - self.started
        metrics.grpc_requests.labels(self.rpc, self.code.name).inc()
        fields: dict[str, Any] = {
            "request_id": self.request_id,
            "door": "grpc",
            "rpc": self.rpc,
            "status": self.code.name,
            "ms": round(seconds * 1000),
        }
        if self.audio is not None:
            fields.update(stream_log_fields(self.audio, seconds))
        write_access_line(access_log, fields)


def _ended_by_caller(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode | None:
    """DEADLINE_EXCEEDED or CANCELLED when the call is over on the caller's side, else None."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED if context.cancelled() else None


class CallGone(Exception):
    """A write failed because the call is over on the caller's side (cancelled, deadline, gone)."""


async def write(context: grpc.aio.ServicerContext[Any, Any], message: Any) -> None:
    """Send one message; grpc fails a write only when the call has ended, which may be before
    `context.cancelled()` says so."""
    try:
        await context.write(message)
    except Exception as exc:
        raise CallGone from exc


@asynccontextmanager
async def serving(
    rpc: str, context: grpc.aio.ServicerContext[Any, Any], metrics: ServiceMetrics
) -> AsyncIterator[CallRecord]:
    """Run one call's body: failures become its status, the engine stops if the call ends early."""
    wanted = metadata_of(context)
    record = CallRecord(rpc, choose_request_id(wanted.get("x-request-id"), wanted.get("x-trace-id")))
    token = request_id_var.set(record.request_id)
    try:
        await context.send_initial_metadata((("x-request-id", record.request_id),))
        yield record
    except asyncio.CancelledError:
        # grpc cancels the handler when the client cancels or the call's deadline passes.
        record.code = _ended_by_caller(context) or grpc.StatusCode.CANCELLED
        raise
    except CallGone:
        record.code = _ended_by_caller(context) or grpc.StatusCode.CANCELLED
    except Exception as exc:
        ended = _ended_by_caller(context)
        if ended is not None:  # a write to a call the caller already left: nobody to tell
            record.code = ended
            return
        refusal = refusal_for(exc)
        record.code = refusal.code
        await context.abort(refusal.code, refusal.message, trailing_metadata=refusal.trailers)
    finally:
        if record.audio is not None and record.audio.outcome == "pending":
            record.audio.cancel()  # the call ended before its audio did: free the engine now
        record.write(metrics)
        request_id_var.reset(token)
