"""What can go wrong with a request, in no door's terms, and what a client is told about it.

The core raises these; each door turns a failure into its own wire format through one table
keyed by `Failure` (doors/http/errors.py, doors/grpc/status.py). So one failure reads the same on every
door, and what a client reads is said here once: a request's own problem is described to the
client who sent it, while an engine's or the service's own exception text is logged, never sent.

This module imports nothing of the service, so every package may raise these.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)


class Failure(StrEnum):
    """The kinds of failure every door maps (HTTP status, gRPC status, event code)."""

    INVALID = "invalid"
    """The request, as sent, cannot be served; the message says what to change."""
    NOT_FOUND = "not_found"
    """It names something (a voice, a clip) that does not exist for this caller."""
    CONFLICT = "conflict"
    """The service's state forbids it (a name taken, cloning on an engine that cannot)."""
    UNSUPPORTED = "unsupported"
    """A valid request for something this service does not do."""
    TOO_LARGE = "too_large"
    """An upload or body over its limit."""
    STORAGE_FULL = "storage_full"
    """The data folder's disk is full; nothing was changed."""
    BUSY = "busy"
    """No room for more work now; retry after a pause."""
    RATE_LIMITED = "rate_limited"
    """This caller's request rate or concurrent-stream allowance is spent; retry after a pause."""
    UNAUTHENTICATED = "unauthenticated"
    """An API key is required and was missing or wrong."""
    DEADLINE = "deadline"
    """The request ran past its deadline; its work was cancelled."""
    NOT_READY = "not_ready"
    """The service is starting up; retry shortly."""
    SHUTTING_DOWN = "shutting_down"
    """The service is shutting down: new work is refused, work past the grace is cut."""
    ENGINE_FAILURE = "engine_failure"
    """The engine failed on an admitted request (not the client's fault)."""
    ENGINE_UNAVAILABLE = "engine_unavailable"
    """The engine serving an admitted request went away (a cluster replica lost); retry."""
    INTERNAL = "internal"
    """Anything else that is not the client's fault."""


ENGINE_FAILURE_MESSAGE = "The engine failed; the error is logged."
INTERNAL_MESSAGE = "Internal error; it is logged."
ENGINE_UNAVAILABLE_MESSAGE = (
    "The engine serving this request was lost before it finished; send the request again."
)
NOT_READY_MESSAGE = "The service is not ready (starting up or shutting down); retry shortly."
SHUTTING_DOWN_MESSAGE = "The service is shutting down and takes no new work; retry on another instance."
DEADLINE_MESSAGE = "The request ran past its deadline; its synthesis was stopped."


class ServiceFailure(Exception):
    """A failure a door reports to its client as `problem()` says."""

    kind: Failure = Failure.INTERNAL
    code: str = "internal_error"
    default_message: str = INTERNAL_MESSAGE

    def __init__(self, message: str | None = None) -> None:
        message = self.default_message if message is None else message
        # A message may quote what the client sent: a lone surrogate there would make it text
        # that no door can encode (JSON, gRPC, a WebSocket frame), so it is quoted escaped.
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        super().__init__(message)
        self.message = message


class RequestError(ServiceFailure):
    """The client's request cannot be served as asked; `message` says what to change."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str = "invalid_request",
        kind: Failure = Failure.INVALID,
        allowed: Sequence[object] | None = None,
    ) -> None:
        super().__init__(message)
        self.param = param
        self.code = code
        self.kind = kind
        self.allowed = list(allowed) if allowed is not None else None


class ServiceBusy(ServiceFailure):
    """The service cannot admit more work now; the client should retry after a pause."""

    kind = Failure.BUSY
    code = "service_busy"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ShuttingDown(ServiceBusy):
    """The service is shutting down: new work is refused, and work still running when the
    shutdown grace ends is cut with this error (each door reports it as its own error)."""

    kind = Failure.SHUTTING_DOWN
    code = "shutting_down"


class NotReady(ServiceFailure):
    """The runtime is not ready: still starting, or shutting down."""

    kind = Failure.NOT_READY
    code = "not_ready"
    default_message = NOT_READY_MESSAGE


class SynthesisFailed(ServiceFailure):
    """The engine failed while producing audio for an admitted request (not the client's fault).
    Its text is for the log: clients read ENGINE_FAILURE_MESSAGE."""

    kind = Failure.ENGINE_FAILURE
    code = "synthesis_failed"


class EngineUnavailable(ServiceFailure):
    """The engine serving an admitted request went away mid-request (engines.base.EngineLost:
    a cluster's engine replica died). Not the request's fault, and not a broken engine: the same
    request, sent again, reaches a live one. Its cause is logged; clients read the fixed message."""

    kind = Failure.ENGINE_UNAVAILABLE
    code = "engine_unavailable"
    default_message = ENGINE_UNAVAILABLE_MESSAGE
    retry_after_s = 1


class DeadlineExceeded(ServiceFailure):
    """A request ran past its deadline; its work was cancelled."""

    kind = Failure.DEADLINE
    code = "deadline_exceeded"
    default_message = DEADLINE_MESSAGE


class RateLimited(ServiceFailure):
    """A client exceeded its request rate or its concurrent-stream allowance."""

    kind = Failure.RATE_LIMITED

    def __init__(self, message: str, retry_after_s: int, reason: str) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.reason = reason
        self.code = reason


class Unauthorized(ServiceFailure):
    """An API key is required and the caller sent none, or a wrong one."""

    kind = Failure.UNAUTHENTICATED
    code = "invalid_api_key"


@dataclass(frozen=True)
class Problem:
    """A failure as a client is told it, before a door puts it in its own format."""

    kind: Failure
    code: str
    message: str
    param: str | None = None
    allowed: list[object] | None = None
    retry_after_s: int | None = None


def problem(exc: BaseException) -> Problem:
    """What the client is told about `exc`. The text of an engine failure or of an unexpected
    error is logged here and replaced by a fixed message."""
    if isinstance(exc, RequestError):  # first: a request's limit reached mid-render is both
        return Problem(exc.kind, exc.code, exc.message, exc.param, exc.allowed)
    if isinstance(exc, SynthesisFailed):
        log.error("synthesis failed: %s", exc)
        return Problem(Failure.ENGINE_FAILURE, exc.code, ENGINE_FAILURE_MESSAGE)
    if isinstance(exc, ServiceFailure):
        retry = getattr(exc, "retry_after_s", None)
        return Problem(exc.kind, exc.code, exc.message, retry_after_s=retry)
    log.error("unhandled error", exc_info=exc)
    return Problem(Failure.INTERNAL, "internal_error", INTERNAL_MESSAGE)
