"""The caller of an HTTP request (the keys and limits themselves: callers.py; the step every door
takes: doors/admission.py)."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from sentiric_tts.callers import key_from_headers
from sentiric_tts.doors.admission import Caller, identify
from sentiric_tts.runtime import Runtime


def presented_key(connection: HTTPConnection) -> str | None:
    return key_from_headers(connection.headers.get("authorization"), connection.headers.get("x-api-key"))


def http_caller(runtime: Runtime, connection: HTTPConnection) -> Caller:
    """Who sends this request; Unauthorized (401) when keys are set and its key is missing or
    wrong. Readiness needs no check here: HTTP is served only once the service is ready, and
    while it drains, new work is refused when it is opened."""
    address = connection.client.host if connection.client else "unknown"
    return identify(runtime, presented_key(connection), address, "http")
