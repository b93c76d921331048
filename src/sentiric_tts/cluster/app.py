"""The Serve application: `Ingress` (every door) in front of `Engine` (one engine per replica).

serve.yaml names this module's `app` as its import path and sets each deployment's replicas,
autoscaling and resources by name; the defaults here are for a CPU-only cluster running Piper.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from ray import serve
from ray.serve import Application
from ray.serve.config import RequestRouterConfig
from ray.serve.handle import DeploymentHandle

from sentiric_tts.app import create_app
from sentiric_tts.cluster.engine_replica import EngineReplica
from sentiric_tts.cluster.remote_engine import RemoteEngine, remote_engine
from sentiric_tts.engines.base import Engine
from sentiric_tts.logging_setup import configure_logging
from sentiric_tts.settings import Settings, get_settings

INGRESS = "Ingress"
ENGINE = "Engine"


@serve.deployment(name=INGRESS, max_ongoing_requests=256)
@serve.ingress()
class Ingress:
    """The FastAPI app of one machine, built in the replica (its lifespan builds the Runtime) with
    an engine whose work the `Engine` deployment does."""

    def __init__(self, engine: DeploymentHandle) -> None:
        self._engine = engine
        self._remote: RemoteEngine | None = None

    def __serve_build_asgi_app__(self) -> FastAPI:
        settings = get_settings()
        configure_logging(settings.server.log_level, settings.server.log_json)
        # One remote engine stands for every replica: Serve's router spreads the calls.
        settings = settings.model_copy(
            update={"engines": settings.engines.model_copy(update={"instances": 1})}
        )
        app = create_app(settings, load=self._load)
        service_lifespan = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            async with service_lifespan(app):
                if self._remote is not None:  # calls per engine replica beside the service's metrics
                    app.state.runtime.metrics.registry.register(self._remote.calls)
                yield

        app.router.lifespan_context = lifespan
        return app

    def _load(self, settings: Settings) -> Engine:
        self._remote = remote_engine(self._engine, settings)
        return self._remote

    def check_health(self) -> None:
        """Serve's health check: an ingress built for another engine than its replicas now run
        (the Engine deployment was updated alone) reports itself unhealthy, and Serve replaces
        it with one that describes the engine anew. Until then its requests are answered
        `engine_unavailable` (send it again), never with another engine's audio."""
        if self._remote is not None and self._remote.stale is not None:
            raise RuntimeError(f"stale ingress: {self._remote.stale}")


ENGINE_ROUTER = RequestRouterConfig(
    request_router_class="sentiric_tts.cluster.routing:LatentAffinityRouter",
    # Each replica's routing stats (held conditionings, figures) reach the router this often: the
    # staleness of the conditioning affinity and of the tts_replica_* figures on /metrics.
    request_routing_stats_period_s=1.0,
)
"""The Engine deployment's router (routing.py); serve.yaml sets the same, to copy and edit."""

# Piper by default: one CPU per replica; serve.yaml asks for a GPU per XTTS replica instead.
EngineDeployment = serve.deployment(
    name=ENGINE,
    ray_actor_options={"num_cpus": 1},
    max_ongoing_requests=16,
    request_router_config=ENGINE_ROUTER,
)(EngineReplica)


def build() -> Application:
    return Ingress.bind(EngineDeployment.bind())  # type: ignore[attr-defined]


app = build()
