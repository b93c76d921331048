"""Access to the shared runtime from a request."""

from __future__ import annotations

from fastapi import Request

from sentiric_tts.doors.http.security import http_caller
from sentiric_tts.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def client_identity(request: Request) -> str:
    """Authenticate the caller (401 when keys are set and it has none); its identity for limits."""
    runtime = get_runtime(request)
    return http_caller(runtime, request).client
