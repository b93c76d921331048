"""A stream cut by a shutdown ends as an aborted response, not as a string of tracebacks.

When the shutdown grace ends, the scheduler ends every job still running with ShuttingDown
(synthesis/scheduler.py). A whole-file request has sent nothing yet: its error handler answers
503 + Retry-After. A stream has already sent its status and part of its body, so the only end a
client can tell from success is a connection closed without the terminating chunk (clients
report an incomplete body). This middleware stops the error there and returns; the server then
closes the connection mid-body, which is exactly that.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sentiric_tts.failures import ShuttingDown

log = logging.getLogger(__name__)


def _caused_by_shutdown(exc: BaseException | None) -> bool:
    """ShuttingDown itself, or an error raised because of it (Starlette re-raises a handled
    exception as RuntimeError once the response has started; task groups wrap in groups)."""
    # One walk over the whole graph of causes, contexts and group members, each visited once:
    # an exception's context may lead back to a group that holds it.
    pending = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ShuttingDown):
            return True
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend((current.__cause__, current.__context__))
    return False


class ShutdownCutMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if not (started and _caused_by_shutdown(exc)):
                raise
            log.info("Stream cut by the shutdown: closing the connection without the final chunk")
