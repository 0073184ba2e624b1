"""`GET /metrics`: Prometheus text (what it holds: `scheduler.metrics`); behind an API key unless
REELFORGE_METRICS_AUTH is `none`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from scheduler.api.auth import check_key
from scheduler.api.deps import ServicesDep, error_responses

router = APIRouter(tags=["operations"])
PROMETHEUS_TEXT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}
}


@router.get(
    "/metrics",
    response_class=Response,
    responses=PROMETHEUS_TEXT | error_responses(401, 503),
)
async def metrics(request: Request, services: ServicesDep) -> Response:
    """Jobs by state and pool, queue lengths (waiting plus held by workers), live workers by pool and
    state, job duration histograms, webhook deliveries by outcome, and this process's request latency."""
    settings = services.settings
    if settings.metrics_auth == "api_key":
        check_key(request.headers.get("authorization"), settings.api_keys)
    body = await run_in_threadpool(generate_latest, services.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
