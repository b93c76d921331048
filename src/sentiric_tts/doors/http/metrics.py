"""GET /metrics: Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sentiric_tts.doors.http.deps import get_runtime
from sentiric_tts.doors.http.security import http_caller
from sentiric_tts.runtime import Runtime

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request, runtime: Runtime = Depends(get_runtime)) -> Response:
    if runtime.settings.security.metrics_require_auth:
        http_caller(runtime, request)  # raises Unauthorized (401) without a valid key
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
