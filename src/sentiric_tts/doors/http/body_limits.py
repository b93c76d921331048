"""Request body limits per route, enforced while the body is read.

A route whose body is form data (cloning, the voice library, Gradio's upload) takes
`clone_max_files` clips of `clone_max_file_bytes` plus the form's fields; every other route a
JSON body: text or SSML at their own limits, in JSON's longest spelling, plus the other fields.
A declared Content-Length over every limit is refused before the app runs, one over its route's
limit before a byte of the body is read; a chunked body is counted as it arrives and refused
the moment it passes the limit, so nothing past the limit is buffered or spooled to disk.

The app below is told the client went away (`http.disconnect`), so whatever it was parsing stops
and cleans up as for any vanished client, and this middleware answers 413 in the service's error
shape with `Connection: close`: the server closes instead of reading the rest to find the next
request, and the client stops sending. (Starlette's RequestBodyLimitMiddleware counts the same
bytes but answers in plain text, only once the app reads, and keeps the connection reading.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from fastapi import params
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sentiric_tts.doors.gradio.ui import GRADIO_PATH
from sentiric_tts.doors.http.errors import error_payload
from sentiric_tts.settings import Settings

# Gradio's own upload route (multipart it parses itself, so not declared as form data).
GRADIO_UPLOAD_PATH = f"{GRADIO_PATH}/gradio_api/upload"
# Room for a body's fields besides its text: voice, language, format, params, form part headers.
JSON_FIELDS_BYTES = 64 * 1024

P = ParamSpec("P")
R = TypeVar("R")


LATENT_JSON_BYTES = 4 * 1024 * 1024
"""Room, in a route marked `takes_latents`, for a speaker's conditioning as JSON numbers (XTTS
v2: 32 x 1024 latents and a 512-value embedding, at up to ~24 bytes a number) besides its text."""


def takes_latents(endpoint: Callable[P, R]) -> Callable[P, R]:
    """Mark a route's endpoint as taking speaker latents in its JSON body (a larger limit)."""
    endpoint.takes_latents = True  # type: ignore[attr-defined]
    return endpoint


def json_text_bytes(chars: int) -> int:
    """The longest JSON spelling of `chars` characters: an astral one is two \\uXXXX escapes."""
    return 12 * chars


@dataclass(frozen=True)
class BodyLimits:
    json_bytes: int
    upload_bytes: int
    json_rule: str
    upload_rule: str

    @property
    def latent_bytes(self) -> int:
        return self.json_bytes + LATENT_JSON_BYTES

    @property
    def largest_bytes(self) -> int:
        return max(self.upload_bytes, self.latent_bytes)

    @classmethod
    def from_settings(cls, settings: Settings) -> BodyLimits:
        # SSML's markup is ASCII: at most 6 bytes per byte once escaped (\u003c for '<').
        json_bytes = max(json_text_bytes(settings.limits.max_text_chars), 6 * settings.limits.ssml_max_bytes)
        json_bytes += JSON_FIELDS_BYTES
        return cls(
            json_bytes=json_bytes,
            upload_bytes=settings.voices.clone_max_files * settings.voices.clone_max_file_bytes + json_bytes,
            json_rule=f"text up to {settings.limits.max_text_chars} characters or SSML up to "
            f"{settings.limits.ssml_max_bytes} bytes, with the other fields",
            upload_rule=f"up to {settings.voices.clone_max_files} reference clips of "
            f"{settings.voices.clone_max_file_bytes} bytes each, with the form's fields",
        )

    def for_route(self, scope: Scope) -> tuple[int, str]:
        """The limit of the route the request was routed to (routing has set scope['route'])."""
        if takes_uploads(scope):
            return self.upload_bytes, self.upload_rule
        route = scope.get("route")
        if isinstance(route, APIRoute) and getattr(route.endpoint, "takes_latents", False):
            return self.latent_bytes, f"{self.json_rule} and a speaker's latents"
        return self.json_bytes, self.json_rule


def takes_uploads(scope: Scope) -> bool:
    route = scope.get("route")
    if isinstance(route, APIRoute) and any(
        isinstance(param.field_info, params.Form) for param in route.dependant.body_params
    ):
        return True
    return bool(scope.get("path") == GRADIO_UPLOAD_PATH)


def declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP parser refuses a malformed one before the app runs
    return None


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.limits.largest_bytes:
            await refuse(
                scope,
                receive,
                send,
                f"The declared body ({declared} bytes) is larger than any route here takes (at most "
                f"{self.limits.largest_bytes} bytes: {self.limits.upload_rule}): send a smaller body.",
            )
            return
        guard = _BodyGuard(self.limits, scope, declared, receive, send)
        try:
            await self.app(scope, guard.receive, guard.send)
        except Exception:
            if guard.over is None:
                raise
            # The app failed on the disconnect it was shown; the 413 below is the answer.
        if guard.over is not None and not guard.response_started:
            await refuse(scope, receive, send, guard.over)


class _BodyGuard:
    """The app's receive and send for one request: counts the body, and past its limit shows
    the app a disconnect and drops what it sends."""

    def __init__(
        self, limits: BodyLimits, scope: Scope, declared: int | None, receive: Receive, send: Send
    ) -> None:
        self._limits = limits
        self._scope = scope
        self._declared = declared
        self._receive = receive
        self._send = send
        self._received = 0
        self.over: str | None = None
        """Why the body is refused, once it is."""
        self.response_started = False

    async def receive(self) -> Message:
        if self.over is not None:
            return {"type": "http.disconnect"}
        limit, rule = self._limits.for_route(self._scope)
        if self._declared is not None and self._declared > limit:
            self.over = f"The declared body ({self._declared} bytes) is over this route's {limit}-byte limit"
        else:
            message = await self._receive()
            if message["type"] != "http.request":
                return message
            self._received += len(message.get("body", b""))
            if self._received <= limit:
                return message
            self.over = f"The request body is over this route's {limit}-byte limit"
        self.over += f" (it takes {rule}): send a smaller body."
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self.over is not None and not self.response_started:
            return  # the app's answer to the disconnect; ours goes out instead
        if message["type"] == "http.response.start":
            self.response_started = True
        await self._send(message)


async def refuse(scope: Scope, receive: Receive, send: Send, message: str) -> None:
    """413 in the service's error shape; the connection closes after it."""
    status, body = error_payload(scope.get("path", "/"), 413, "body_too_large", message)
    await JSONResponse(body, status, headers={"Connection": "close"})(scope, receive, send)
