"""Errors that carry what a client needs to fix its request, shared by every door."""

from __future__ import annotations

from collections.abc import Sequence


class RequestError(Exception):
    """The client's request cannot be served as asked; `message` says what to change."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str = "invalid_request",
        status: int = 422,
        allowed: Sequence[object] | None = None,
    ) -> None:
        # A message may quote what the client sent: a lone surrogate there would make it text
        # that no door can encode (JSON, gRPC, a WebSocket frame), so it is quoted escaped.
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status
        self.allowed = list(allowed) if allowed is not None else None


class ServiceBusy(Exception):
    """The service cannot admit more work now; the client should retry after a pause."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class ShuttingDown(ServiceBusy):
    """The service is shutting down: new work is refused, and work still running when the
    shutdown grace ends is cut with this error (each door reports it as its own error)."""


class SynthesisFailed(Exception):
    """The engine failed while producing audio for an admitted request (not the client's fault)."""


class DeadlineExceeded(Exception):
    """A request ran past its deadline; its work was cancelled."""


class RateLimited(Exception):
    """A client exceeded its request rate or its concurrent-stream allowance."""

    def __init__(self, message: str, retry_after_s: int, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
        self.reason = reason


class Unauthorized(Exception):
    """An API key is required and the caller sent none, or a wrong one."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
