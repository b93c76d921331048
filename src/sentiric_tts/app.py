"""FastAPI application factory; the lifespan loads the engine, warms it up and stops it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from sentiric_tts import __version__
from sentiric_tts.doors.gradio.ui import mount_gradio
from sentiric_tts.doors.grpc.server import GrpcDoor
from sentiric_tts.doors.http import catalog, health, metrics, tts, voices
from sentiric_tts.doors.http.body_limits import BodyLimitMiddleware, BodyLimits
from sentiric_tts.doors.http.errors import install_error_handlers
from sentiric_tts.doors.http.middleware import RequestContextMiddleware
from sentiric_tts.doors.http.origin_guard import AllowedHosts, OriginGuard
from sentiric_tts.doors.http.shutdown_cut import ShutdownCutMiddleware
from sentiric_tts.doors.openai import routes as openai_routes
from sentiric_tts.doors.piper_http import routes as piper_http_routes
from sentiric_tts.doors.websocket import route as websocket_route
from sentiric_tts.doors.wyoming.server import WyomingDoor
from sentiric_tts.doors.xtts_api import routes as xtts_api_routes
from sentiric_tts.doors.xtts_streaming import routes as xtts_streaming_routes
from sentiric_tts.engines.base import Engine
from sentiric_tts.engines.selection import load_engine
from sentiric_tts.runtime import CUT_SETTLE_S, Runtime
from sentiric_tts.settings import Settings, get_settings
from sentiric_tts.web import mount_dashboard

_DESCRIPTION = """Self-hosted text to speech: Coqui XTTS v2 on GPUs, an embedded Piper engine
everywhere else. Whole files or streams that start before synthesis is done."""


def create_app(settings: Settings | None = None, load: Callable[[Settings], Engine] = load_engine) -> FastAPI:
    """`load` makes the engine (Runtime.build): on a Ray Serve cluster, one whose work is done by
    the engine replicas (cluster/remote_engine.py)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        grpc_door = GrpcDoor.configure(settings)  # TLS files checked before the engine loads
        wyoming_door = WyomingDoor.configure(settings)
        runtime = await anyio.to_thread.run_sync(partial(Runtime.build, settings, load=load))
        app.state.runtime = runtime
        await anyio.to_thread.run_sync(runtime.start)
        app.state.grpc = grpc_door
        app.state.wyoming = wyoming_door
        try:
            if grpc_door is not None:
                await grpc_door.start(runtime)  # raises (and the process exits) if it cannot serve
            if wyoming_door is not None:
                await wyoming_door.start(runtime)  # the same
            yield
        finally:
            # After a signal the server has drained and cut already (cli.py); these return at once.
            runtime.begin_shutdown()
            await runtime.drain(settings.server.shutdown_grace_seconds)
            runtime.cut()
            if grpc_door is not None:
                await grpc_door.stop(CUT_SETTLE_S)  # calls cut above need only send their status
            if wyoming_door is not None:
                await wyoming_door.stop(CUT_SETTLE_S)  # the same: replies cut send their error event
            await anyio.to_thread.run_sync(runtime.stop)

    app = FastAPI(
        title="Sentiric TTS",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.runtime = None
    app.state.grpc = None
    app.state.wyoming = None
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(tts.router)
    app.include_router(catalog.router)
    app.include_router(voices.router)
    app.include_router(metrics.router)
    app.include_router(openai_routes.router)
    app.include_router(websocket_route.router)
    # Other servers' APIs, for the clients people already run (docs/clients.md).
    app.include_router(xtts_api_routes.build_router())
    app.include_router(xtts_streaming_routes.build_router())
    app.include_router(piper_http_routes.router)  # POST / and /synthesize; GET / stays the dashboard
    mount_dashboard(app)
    mount_gradio(app, settings)
    # Innermost: its 413 passes through CORS (a browser can read it) and the request log.
    app.add_middleware(BodyLimitMiddleware, limits=BodyLimits.from_settings(settings))
    app.add_middleware(ShutdownCutMiddleware)
    app.add_middleware(
        OriginGuard,
        cors_origins=settings.security.cors_origins,
        allowed_hosts=AllowedHosts.for_settings(settings),
    )
    if settings.security.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.security.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            # Cache-Control and Bypass-Tunnel-Reminder: SillyTavern sends them (xtts-api door).
            allow_headers=[
                "Authorization",
                "X-API-Key",
                "Content-Type",
                "X-Request-ID",
                "Cache-Control",
                "Bypass-Tunnel-Reminder",
            ],
            expose_headers=[
                "X-Request-ID",
                "X-Sample-Rate",
                "X-Voice",
                "X-Language",
                "X-Audio-Duration",
                "X-SSML-Ignored-Tags",
                "Retry-After",
            ],
        )
    app.add_middleware(RequestContextMiddleware)
    return app
