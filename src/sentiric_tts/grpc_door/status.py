"""Which gRPC status, message and trailers a failure becomes: the HTTP error mapping's twin."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc

from sentiric_tts.synthesis.errors import (
    DeadlineExceeded,
    RateLimited,
    RequestError,
    ServiceBusy,
    ShuttingDown,
    SynthesisFailed,
    Unauthorized,
)

log = logging.getLogger(__name__)

NOT_READY_MESSAGE = "The service is not ready (starting up or shutting down); retry shortly."


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    message: str
    trailers: tuple[tuple[str, str], ...] = ()


def refusal_for(exc: Exception) -> Refusal:
    """The status a failed call ends with; unexpected errors are logged and say only "internal"."""
    if isinstance(exc, RequestError):
        # 409 is the HTTP API's "cannot clone on this engine": the request is fine, the service
        # is not in the state it needs.
        code = grpc.StatusCode.FAILED_PRECONDITION if exc.status == 409 else grpc.StatusCode.INVALID_ARGUMENT
        return Refusal(code, exc.message)
    if isinstance(exc, NotServing):
        return unavailable()
    if isinstance(exc, ShuttingDown):  # refused, or cut at the end of the shutdown grace
        return Refusal(grpc.StatusCode.UNAVAILABLE, exc.message)
    if isinstance(exc, Unauthorized):
        return Refusal(grpc.StatusCode.UNAUTHENTICATED, exc.message)
    if isinstance(exc, RateLimited | ServiceBusy):
        return Refusal(
            grpc.StatusCode.RESOURCE_EXHAUSTED, exc.message, (("retry-after", str(exc.retry_after_s)),)
        )
    if isinstance(exc, DeadlineExceeded):
        return Refusal(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc))
    if isinstance(exc, SynthesisFailed):
        log.error("synthesis failed: %s", exc)
        return Refusal(grpc.StatusCode.INTERNAL, "The engine failed; the error is logged.")
    log.error("unhandled error in a gRPC call", exc_info=exc)
    return Refusal(grpc.StatusCode.INTERNAL, "Internal error; it is logged.")


class NotServing(Exception):
    """The runtime is not ready: still starting, or shutting down."""


def unavailable() -> Refusal:
    return Refusal(grpc.StatusCode.UNAVAILABLE, NOT_READY_MESSAGE)
