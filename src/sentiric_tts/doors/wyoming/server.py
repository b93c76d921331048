"""The Wyoming server's lifecycle: its TCP port, its zeroconf advertisement; started and stopped
by the app beside HTTP and gRPC, on the same event loop and runtime.

Start-up fails, and with it the whole process, when the port cannot be bound (HTTP never stays
up with Wyoming silently missing). On SIGTERM the listener closes at once (new connections are
refused); replies in flight finish within the shutdown grace or end with an error event; then
the connections are closed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import time
from typing import Any

from wyoming.server import AsyncTcpServer

from sentiric_tts.doors.wyoming.handler import WyomingHandler
from sentiric_tts.runtime import Runtime
from sentiric_tts.settings import Settings

log = logging.getLogger(__name__)

_WILDCARDS = ("", "0.0.0.0", "::")


class WyomingStartupError(RuntimeError):
    """The Wyoming server could not start as configured."""


class _TcpServer(AsyncTcpServer):
    """wyoming's TCP server, able to stop accepting while its connections go on."""

    def stop_accepting(self) -> None:
        server: asyncio.AbstractServer | None = getattr(self, "_server", None)
        if server is not None:
            server.close()

    @property
    def bound_port(self) -> int | None:
        server: asyncio.Server | None = getattr(self, "_server", None)
        if server is None or not server.sockets:
            return None
        return int(server.sockets[0].getsockname()[1])


class WyomingDoor:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.host = settings.wyoming.host or settings.server.host
        self._server: _TcpServer | None = None
        self._handlers: set[WyomingHandler] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._zeroconf: Any = None
        self.port: int | None = None
        """The bound port, once started."""

    @classmethod
    def configure(cls, settings: Settings) -> WyomingDoor | None:
        """None when the Wyoming door is off."""
        return cls(settings) if settings.wyoming.enabled else None

    async def start(self, runtime: Runtime) -> None:
        port = self._settings.wyoming.port
        server = _TcpServer(self.host, port)

        def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> WyomingHandler:
            return WyomingHandler(reader, writer, runtime, self._handlers)

        try:
            await server.start(handler)
        except OSError as exc:
            raise WyomingStartupError(
                f"Wyoming cannot listen on {self.host}:{port}: {exc} (set TTS_WYOMING_PORT, or "
                "TTS_WYOMING_ENABLED=false)"
            ) from exc
        self._server = server
        self.port = server.bound_port or port
        self._loop = asyncio.get_running_loop()
        runtime.shutdown_listeners.append(self._runtime_shutting_down)
        log.info(
            "Wyoming (Home Assistant) on %s:%d; it has no authentication: API keys do not apply to it",
            self.host,
            self.port,
        )
        if self._settings.wyoming.zeroconf:
            await self._advertise()

    async def _advertise(self) -> None:
        """`_wyoming._tcp` over mDNS, for Home Assistant's discovery; a failure is logged only."""
        if importlib.util.find_spec("zeroconf") is None:
            log.warning(
                "TTS_WYOMING_ZEROCONF is on but the zeroconf package is not installed "
                "(pip install 'sentiric-tts[zeroconf]'): the Wyoming server is not advertised"
            )
            return
        from wyoming.zeroconf import HomeAssistantZeroconf

        try:
            advertised = HomeAssistantZeroconf(
                port=self.port or self._settings.wyoming.port,
                name=self._settings.wyoming.zeroconf_name or None,
                host=None if self.host in _WILDCARDS else self.host,
            )
            await advertised.register_server()
        except Exception as exc:  # no multicast route, a name conflict: serve on without it
            log.warning("Wyoming zeroconf advertisement failed: %s", exc)
            return
        self._zeroconf = advertised
        log.info("Wyoming advertised over zeroconf as %s._wyoming._tcp.local.", advertised.name)

    def _runtime_shutting_down(self) -> None:
        """Runtime.begin_shutdown (a signal handler or another thread): stop accepting, and tell
        open streams."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._shutting_down)

    def _shutting_down(self) -> None:
        if self._server is not None:
            self._server.stop_accepting()
        for handler in list(self._handlers):
            handler.shut_down()

    async def stop(self, grace_s: float) -> None:
        """Stop accepting, let replies in flight run up to `grace_s`, then close every connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stop_accepting()
        deadline = time.monotonic() + grace_s
        while any(h.replying for h in self._handlers) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await server.stop()  # closes each connection; their replies are cancelled
        closed_by = time.monotonic() + 1.0
        while self._handlers and time.monotonic() < closed_by:
            await asyncio.sleep(0.02)
        await self._unadvertise()
        log.info("Wyoming server stopped")

    async def _unadvertise(self) -> None:
        advertised, self._zeroconf = self._zeroconf, None
        closing = getattr(getattr(advertised, "_aiozc", None), "async_close", None)
        if closing is not None:
            try:
                await closing()
            except Exception as exc:
                log.warning("Wyoming zeroconf: %s", exc)
