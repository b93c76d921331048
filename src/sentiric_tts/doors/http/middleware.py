"""Per-request context: a request id (echoed as X-Request-ID), one log line, request metrics.

Pure ASGI, so it sees streamed responses end (the log line comes when the last byte went out,
with the audio seconds and time to first audio the stream produced).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sentiric_tts.observability.context import choose_request_id, request_id_var
from sentiric_tts.observability.record import stream_log_fields, write_access_line

log = logging.getLogger("sentiric_tts.access")
_LOGGED_PATH_CHARS = 256
# Printable ASCII but for spaces and '%': the path stays one token of one line, however odd.
_PATH_SAFE = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) != "%")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        request_id = choose_request_id(headers.get("x-request-id"), headers.get("x-trace-id"))
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})
        started = time.perf_counter()
        status = 500
        failed = False

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            failed = True
            log.exception("request failed")
            raise
        finally:
            self._account(scope, status, failed, time.perf_counter() - started)
            request_id_var.reset(token)

    @staticmethod
    def _account(scope: Scope, status: int, failed: bool, seconds: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        state: dict[str, Any] = scope.get("state", {})
        runtime = getattr(scope.get("app"), "state", None)
        runtime = getattr(runtime, "runtime", None)
        if runtime is not None:
            runtime.metrics.requests.labels(path, method, str(status)).inc()
        fields: dict[str, Any] = {
            "request_id": request_id_var.get(),
            "route": path,
            "method": method,
            "status": status,
            "ms": round(seconds * 1000),
        }
        stream = state.get("audio_stream")
        if stream is not None:
            fields.update(stream_log_fields(stream, seconds))
        if failed:
            fields.setdefault("outcome", "error")
        if route is None and status == 404:
            # No route: say what was asked for, so an operator sees which API a client expected.
            fields["path"] = quote(str(scope.get("path", ""))[:_LOGGED_PATH_CHARS], safe=_PATH_SAFE)
            write_access_line(log, fields, logging.WARNING)
            return
        write_access_line(log, fields)
