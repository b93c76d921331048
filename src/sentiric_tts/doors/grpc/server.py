"""The gRPC server's lifecycle: TLS, port, health, reflection; started and stopped by the app.

It runs on the app's event loop, so calls share the runtime (pipeline, scheduler, limits) with
HTTP directly. Start-up fails, and with it the whole process, when the TLS files are unusable or
the port cannot be bound: HTTP never stays up with gRPC silently missing.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from sentiric_tts.doors.grpc.contract import SERVICE_NAME, pb_grpc
from sentiric_tts.doors.grpc.servicer import TtsCoquiServicer
from sentiric_tts.doors.grpc.tls import TlsFiles, load_tls
from sentiric_tts.runtime import Runtime
from sentiric_tts.settings import Settings

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

# Connections held by clients that are gone or idle are closed, so they cannot pile up: an idle
# channel gets GOAWAY after 5 minutes (the client reconnects on its next call, as for a
# restart), a peer that stops answering keepalive pings during a call is dropped, and every
# connection is renewed after an hour (a call whose request never finishes arriving has no
# deadline of its own to end it).
CONNECTION_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_connection_idle_ms", 5 * 60_000),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.max_connection_age_ms", 60 * 60_000),
)


class GrpcStartupError(RuntimeError):
    """The gRPC server could not start as configured."""


class GrpcDoor:
    def __init__(self, settings: Settings, tls: TlsFiles | None) -> None:
        self._settings = settings
        self._tls = tls
        self._server: grpc.aio.Server | None = None
        self._health = HealthServicer()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._health_update: asyncio.Task[None] | None = None  # held: the loop keeps only a weak ref
        self.port: int | None = None
        """The bound port, once started."""

    @classmethod
    def configure(cls, settings: Settings) -> GrpcDoor | None:
        """None when gRPC is off; TLS files are read and checked now, before the engine loads."""
        if not settings.grpc.enabled:
            return None
        return cls(settings, load_tls(settings))

    async def start(self, runtime: Runtime) -> None:
        settings = self._settings
        server = grpc.aio.server(
            options=[
                # grpc binds with SO_REUSEPORT by default: a second server on a taken port would
                # then share it silently instead of failing.
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", settings.grpc.max_message_bytes),
                # A call's metadata is bounded like an HTTP request's head. Soft and hard limit
                # alike: between the two grpc refuses a random share of calls.
                ("grpc.max_metadata_size", settings.server.max_header_bytes),
                ("grpc.absolute_max_metadata_size", settings.server.max_header_bytes),
                *CONNECTION_OPTIONS,
                # A connection past its age gets GOAWAY (clients reconnect for their next call);
                # its calls in flight keep their whole deadline before it is closed.
                (
                    "grpc.max_connection_age_grace_ms",
                    round(settings.admission.request_timeout_seconds * 1000) + 10_000,
                ),
            ]
        )
        pb_grpc.add_TtsCoquiServiceServicer_to_server(TtsCoquiServicer(runtime), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        address = f"{settings.grpc.host}:{settings.grpc.port}"
        try:
            if self._tls is None:
                self.port = server.add_insecure_port(address)
            else:
                self.port = server.add_secure_port(address, self._tls.credentials())
        except RuntimeError as exc:
            raise GrpcStartupError(f"gRPC cannot listen on {address}: {exc}") from exc
        await server.start()
        self._server = server
        self._loop = asyncio.get_running_loop()
        runtime.shutdown_listeners.append(self._runtime_shutting_down)
        await self._set_health(SERVING if runtime.ready else NOT_SERVING)
        if self._tls is None:
            log.info(
                "gRPC %s on %s without TLS (set TTS_GRPC_TLS_CERT and _KEY for TLS)", SERVICE_NAME, address
            )
        else:
            log.info(
                "gRPC %s on %s with %s", SERVICE_NAME, address, "mutual TLS" if self._tls.mutual else "TLS"
            )

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        for service in ("", SERVICE_NAME):
            await self._health.set(service, status)

    def _runtime_shutting_down(self) -> None:
        """Runtime.begin_shutdown (a signal handler or another thread): health turns NOT_SERVING."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def flip() -> None:
            self._health_update = loop.create_task(self._health.enter_graceful_shutdown())

        loop.call_soon_threadsafe(flip)

    async def stop(self, grace_s: float) -> None:
        """Refuse new calls, let calls in flight run up to `grace_s`, then cancel them."""
        server, self._server = self._server, None
        if server is None:
            return
        await self._health.enter_graceful_shutdown()
        await server.stop(grace_s)
        log.info("gRPC server stopped")
