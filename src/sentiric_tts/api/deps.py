"""Access to the shared runtime from a request."""

from __future__ import annotations

from fastapi import Request

from sentiric_tts.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
