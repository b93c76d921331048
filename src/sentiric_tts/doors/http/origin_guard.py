"""Refuses what a web page on another site can make a browser send: requests that change state
from another origin (CSRF), and requests under a host name that is not this service's (DNS
rebinding). Pure ASGI, in front of every HTTP route and the WebSocket.

- Origin. A page may POST a form (multipart included) or open a WebSocket to any address with no
  CORS preflight, so CORS alone stops neither. Browsers send `Origin` on both, and on every
  cross-origin POST/PUT/PATCH/DELETE. Allowed: no Origin (curl, SDKs, non-browser clients), the
  service's own origin (host and port equal to the request's Host: the dashboard, /gradio,
  /docs), and the origins in TTS_CORS_ORIGINS ('*': any). Otherwise 403. Checked with and
  without API keys: a browser never adds a key on its own, so only pages are affected, and a
  page on another site should be listed in TTS_CORS_ORIGINS in either case.
- Host. A rebinding page reaches the service under the attacker's name, as its own origin. In
  open mode (no API keys) only these Hosts are answered, else 421: any IP address (rebinding
  needs a name), localhost, this machine's host names, the bind address and TTS_ALLOWED_HOSTS
  ('*': any). With keys a rebound page still has no key, while clients calling a service name
  (Kubernetes, a proxy that rewrites Host) must keep working, so any Host is answered.
  Health probes (/health*) answer any Host: orchestrators and load balancers send what they
  like there, and readiness tells a page nothing.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from sentiric_tts.doors.http.errors import error_payload
from sentiric_tts.settings import Settings

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})
_HEALTH_PATH = "/health"


def _split(netloc: str) -> tuple[str, int | None] | None:
    """(host name, port) of a Host header or an origin's authority; None when malformed."""
    if not netloc or any(char in netloc for char in "/?#@\\ \t"):
        return None
    parts = urlsplit("//" + netloc)
    try:
        port = parts.port
    except ValueError:
        return None
    return (parts.hostname or "").rstrip("."), port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def machine_names() -> set[str]:
    """This machine's own names, as a client on the network or in /etc/hosts may call it."""
    names: set[str] = set()
    for lookup in (socket.gethostname, socket.getfqdn):
        try:
            names.add(lookup())
        except OSError:  # no resolver on an air-gapped host: the bare host name still counts
            continue
    return {name.lower().rstrip(".") for name in names if name}


@dataclass(frozen=True)
class AllowedHosts:
    """The Host names the service answers to in open mode (the module's doc)."""

    names: frozenset[str]
    suffixes: tuple[str, ...] = ()
    """From '*.example.com' entries: '.example.com'."""

    @classmethod
    def of(cls, entries: Iterable[str]) -> AllowedHosts:
        names: set[str] = set()
        suffixes: list[str] = []
        for entry in entries:
            entry = entry.strip().lower().rstrip(".")
            if entry.startswith("*."):
                suffixes.append(entry[1:])
            elif entry:
                names.add(entry)
        return cls(frozenset(names), tuple(suffixes))

    @classmethod
    def for_settings(cls, settings: Settings) -> AllowedHosts | None:
        """None when any Host is answered: API keys are set, or TTS_ALLOWED_HOSTS has '*'."""
        extra = settings.security.allowed_hosts
        if settings.security.keys_required or "*" in extra:
            return None
        bind = [] if settings.server.host in _WILDCARD_BINDS else [settings.server.host]
        return cls.of(["localhost", *machine_names(), *bind, *extra])

    def allows(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return _is_ip(host) or host in self.names or host.endswith(self.suffixes)


class CrossOrigin:
    """Whether a browser `Origin` may send a state-changing request (the module's doc)."""

    def __init__(self, cors_origins: Iterable[str]) -> None:
        listed = [origin.strip().rstrip("/").lower() for origin in cors_origins]
        self._any = "*" in listed
        self._listed = frozenset(listed)

    def allows(self, origin: str, host_header: str | None, scheme: str) -> bool:
        if self._any or origin.rstrip("/").lower() in self._listed:
            return True
        return host_header is not None and _same_origin(urlsplit(origin), host_header, scheme)


def _same_origin(origin: SplitResult, host_header: str, scheme: str) -> bool:
    """The page's origin names the host and port this request was sent to."""
    own = _split(host_header)
    if own is None or origin.scheme not in _DEFAULT_PORTS:  # 'null' (sandboxed, file://) too
        return False
    theirs = _split(origin.netloc)
    if theirs is None or not theirs[0] or theirs[0] != own[0]:
        return False
    if theirs[1] is None and own[1] is None:
        # Both on their scheme's default port: a TLS-terminating proxy changes the scheme, not the site.
        return True
    return (theirs[1] or _DEFAULT_PORTS[origin.scheme]) == (own[1] or _DEFAULT_PORTS.get(scheme, 80))


class OriginGuard:
    def __init__(
        self, app: ASGIApp, *, cors_origins: Iterable[str], allowed_hosts: AllowedHosts | None
    ) -> None:
        self.app = app
        self._origins = CrossOrigin(cors_origins)
        self._hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, code, message = refusal
        if scope["type"] == "http":
            status, body = error_payload(scope.get("path", "/"), status, code, message)
            await JSONResponse(body, status)(scope, receive, send)
            return
        # The WebSocket door's own way to refuse (as for a wrong key): an error event, then a
        # policy close; nothing of the door runs. A page can read neither a refused handshake's
        # status nor its body, but it does get this event and the close code.
        log.info("WebSocket %s refused: %s", scope.get("path", ""), code)  # HTTP ones have their access line
        socket = WebSocket(scope, receive, send)
        await socket.accept()
        await socket.send_json({"type": "error", "code": code, "message": message})
        await socket.close(1008)

    def _refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        headers = Headers(scope=scope)
        hosts = headers.getlist("host")
        if len(hosts) > 1:  # which one would a check look at? (RFC 9112: answer 400)
            return 400, "invalid_host", f"Send one Host header; this request has {len(hosts)}."
        host = hosts[0] if hosts else None
        path: str = scope.get("path", "")
        if self._hosts is not None and host is not None and not path.startswith(_HEALTH_PATH):
            name = _split(host)
            if name is None or not self._hosts.allows(name[0]):
                shown = host if name is None else name[0]
                return (
                    421,
                    "host_not_allowed",
                    f"This service does not answer to the host name '{shown}'. Call it by its IP "
                    "address, localhost or its machine's name; to allow this name, its operator "
                    "adds it to TTS_ALLOWED_HOSTS.",
                )
        origin = headers.get("origin")
        if origin is None:
            return None
        changes_state = scope["type"] == "websocket" or scope.get("method", "GET") not in SAFE_METHODS
        if not changes_state or self._origins.allows(origin, host, scope.get("scheme", "http")):
            return None
        what = "open a WebSocket" if scope["type"] == "websocket" else f"send {scope.get('method')} requests"
        return (
            403,
            "cross_origin_refused",
            f"A page from '{origin}' may not {what} here. Allowed: pages served by this service, "
            "clients that send no Origin (curl, SDKs), and origins listed in TTS_CORS_ORIGINS. "
            "Behind a reverse proxy, forward the original Host header.",
        )
