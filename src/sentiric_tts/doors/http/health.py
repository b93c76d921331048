"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/health/live", summary="The process is up")
async def live() -> dict[str, str]:
    return {"status": "live"}


def _readiness(request: Request) -> JSONResponse:
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is not None and runtime.draining:
        # Load balancers take the instance out; the listener stays open while work finishes.
        body = {
            "status": "draining",
            "message": "Shutting down: in-flight work is finishing and no new work is taken.",
            "jobs_in_flight": runtime.scheduler.jobs_in_flight,
        }
        return JSONResponse(body, 503)
    if runtime is None or not runtime.ready:
        return JSONResponse({"status": "starting" if runtime is None else "not_ready"}, 503)
    return JSONResponse({"status": "ready", "engine": runtime.engine.name})


@router.get("/health/ready", summary="Ready to synthesize (engine loaded and warmed up)")
async def ready(request: Request) -> JSONResponse:
    return _readiness(request)


@router.get("/health", summary="Same as /health/ready")
async def health(request: Request) -> JSONResponse:
    return _readiness(request)
