"""The uvicorn server configuration, and an HTTP protocol that bounds what a client can hold.

uvicorn's httptools protocol (the fast one `uvicorn[standard]` picks) has no limit on a request's
head and no timer while a request is incomplete: a 250 MB header is accumulated on the event
loop (stalling every door, gRPC included), a client that declares a body and stops sending holds
its connection for ever, and so does one that connects and says nothing. `BoundedHttpToolsProtocol`
keeps httptools (h11 parses in pure Python, several times slower) and adds, per connection:

- a head budget: the request line and headers together may be at most `max_header_bytes` (so
  may a chunked body's trailers, which httptools accumulates the same way), and at most
  `MAX_HEADERS` headers; beyond either the client gets 431 before the parser buffers more;
- one timer for whatever the server is waiting for: a new or kept-alive connection with no
  request in progress is closed after `http_idle_timeout_seconds`; a request's head must arrive
  within `http_read_timeout_seconds` of its first byte, and its body may not pause for longer
  (408, then the connection is closed). While a response is being written there is no timer:
  streamed responses last as long as they last. A pause the server caused (it stopped reading
  because the app has not consumed the body yet, or the client waits for `100 Continue`) is not
  the client's.

The same `uvicorn_config` builds the production server (cli.py) and the test servers, so tests
exercise what runs in production.
"""

from __future__ import annotations

import asyncio
import enum
import json
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from sentiric_tts.doors.http.body_limits import JSON_FIELDS_BYTES, json_text_bytes
from sentiric_tts.doors.http.errors import error_payload
from sentiric_tts.settings import Settings

# Apache's and gunicorn's default; a browser behind a few proxies sends 20-40.
MAX_HEADERS = 100


@dataclass(frozen=True)
class ConnectionLimits:
    max_head_bytes: int
    max_headers: int
    idle_timeout_s: float
    read_timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            max_head_bytes=settings.server.max_header_bytes,
            max_headers=MAX_HEADERS,
            idle_timeout_s=settings.server.idle_timeout_seconds,
            read_timeout_s=settings.server.read_timeout_seconds,
        )


class _Phase(enum.Enum):
    IDLE = "idle"  # between requests (a response may still be being written)
    HEAD = "head"  # a request's line and headers are arriving
    BODY = "body"  # the headers are in, the declared body is arriving
    UPGRADED = "upgraded"  # handed to the WebSocket protocol


class _HeadTooLarge(Exception):
    """Raised from a parser callback; httptools stops parsing and re-raises it as context."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head budget and read/idle timeouts (module docstring)."""

    limits: ClassVar[ConnectionLimits]  # set by `bounded_protocol` on a subclass per server

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _Phase.IDLE
        # Bytes in a row that were not body: a head, chunk framing, trailers. A run ends with
        # body bytes or a message's end; within one read their place is unknown, so a read that
        # holds either starts the run anew with all its non-body bytes (an overcount of at most
        # the read, which is at most the budget).
        self._framing_run = 0
        self._body_fed = 0
        self._run_broken = False
        self._header_count = 0
        self._head_deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.url = b""  # uvicorn sets it per request; a refusal may come before the first

    # --- connection events ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._rearm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        rest = memoryview(data)
        while rest:
            room = self.limits.max_head_bytes - self._framing_run
            if room <= 0:
                self._refuse_head(
                    f"The request line and headers (or a chunked body's trailers) are over "
                    f"{self.limits.max_head_bytes} bytes"
                )
                return
            piece, rest = rest[:room], rest[room:]
            self._body_fed, self._run_broken = 0, False
            if not self._feed(piece):
                return
            if self._body_fed or self._run_broken:
                self._framing_run = len(piece) - self._body_fed
            else:
                self._framing_run += len(piece)
        self._rearm()

    def _feed(self, piece: memoryview) -> bool:
        """Parse `piece`; False when the connection was refused, closed or upgraded."""
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:  # e.g. h2c: served as HTTP/1.1, as uvicorn does
                self._unsupported_upgrade_warning()
                self._rearm()
            return False
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse_head(str(exc.__context__))
                return False
            message = "Invalid HTTP request received."
            self.logger.warning(message)
            self.send_400_response(message)
            return False
        return not self.transport.is_closing()

    def handle_websocket_upgrade(self) -> None:
        self._cancel_timer()
        self._phase = _Phase.UPGRADED
        super().handle_websocket_upgrade()

    # --- parser callbacks ---

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _Phase.HEAD
        self._header_count = 0
        self._head_deadline = self.loop.time() + self.limits.read_timeout_s

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            raise _HeadTooLarge(f"The request has more than {self.limits.max_headers} headers")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._phase = _Phase.BODY
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_fed += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._phase = _Phase.IDLE
        self._run_broken = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # With nothing pipelined, the body still arriving is the answered request's own.
        answered_early = self._phase is _Phase.BODY and not self.pipeline
        super().on_response_complete()
        self._unset_keepalive_if_required()  # our idle timer replaces uvicorn's keep-alive timer
        if answered_early and not self.transport.is_closing():
            # Answered before its body was in (an error, a refusal): reading the rest only to
            # find the next request would take whatever the client still sends; close instead.
            self.transport.close()
            return
        self._rearm()

    # --- the one timer ---

    def _responding(self) -> bool:
        return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _rearm(self) -> None:
        self._cancel_timer()
        if self.transport is None or self.transport.is_closing():
            return
        if self._phase is _Phase.HEAD:
            self._timer = self.loop.call_at(self._head_deadline, self._head_expired)
        elif self._phase is _Phase.BODY:
            self._timer = self.loop.call_later(self.limits.read_timeout_s, self._body_stalled)
        elif self._phase is _Phase.IDLE and not self._responding():
            self._timer = self.loop.call_later(self.limits.idle_timeout_s, self._idle_expired)

    def _idle_expired(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _head_expired(self) -> None:
        self._timer = None
        self._refuse(
            408,
            "request_timeout",
            f"The request line and headers did not arrive within {self.limits.read_timeout_s:g} s.",
        )

    def _body_stalled(self) -> None:
        self._timer = None
        cycle = self.cycle
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            self._rearm()  # the server is the one not reading
            return
        self._refuse(
            408,
            "request_timeout",
            f"The request body stopped arriving: nothing came for {self.limits.read_timeout_s:g} s "
            "before the declared length was complete.",
        )

    # --- refusals ---

    def _refuse_head(self, reason: str) -> None:
        self._refuse(
            431,
            "headers_too_large",
            f"{reason}: send fewer or shorter headers (cookies included); "
            f"the limit is {self.limits.max_head_bytes} bytes and {self.limits.max_headers} headers.",
        )

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer `status` with our error body, then close. The answer is written only where it
        answers the refused request: no earlier response is owed or half-written (pipelining)."""
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self._phase is _Phase.BODY:  # the refused request is `cycle`, unless pipelined
            may_answer = not self.pipeline and cycle is not None and not cycle.response_started
        else:  # the refused request is still a head: no cycle of its own
            may_answer = not self._responding()
        if may_answer:
            path = self.url.split(b"?", 1)[0].decode("latin-1")
            status, body = error_payload(path, status, code, message)
            self._write_response(status, json.dumps(body).encode())
        if cycle is not None and not cycle.response_complete:
            # Its app's receive() reports a disconnect from now on and its sends are dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    def _write_response(self, status: int, body: bytes) -> None:
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)


def bounded_protocol(limits: ConnectionLimits) -> type[BoundedHttpToolsProtocol]:
    """The protocol class uvicorn instantiates per connection, bound to these limits."""

    class ConfiguredProtocol(BoundedHttpToolsProtocol):
        pass

    ConfiguredProtocol.limits = limits
    return ConfiguredProtocol


def ws_max_message_bytes(settings: Settings) -> int:
    """Largest WebSocket message taken: a text message can carry at most ws_max_pending_chars."""
    return json_text_bytes(settings.websocket.max_pending_chars) + JSON_FIELDS_BYTES


def uvicorn_config(app: Any, settings: Settings, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=bounded_protocol(ConnectionLimits.from_settings(settings)),
        ws_max_size=ws_max_message_bytes(settings),
        lifespan="on",
        log_config=None,  # keep our own logging set-up
        access_log=False,  # our middleware writes one richer line per request
        timeout_graceful_shutdown=max(1, round(settings.server.shutdown_grace_seconds)),
    )
