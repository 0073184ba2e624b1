"""Probes: liveness (the process answers) and readiness (Redis answers)."""

from __future__ import annotations

from fastapi import APIRouter

from scheduler.api.deps import ServicesDep, error_responses
from shared.errors import Unavailable

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses=error_responses(503))
def readyz(services: ServicesDep) -> dict[str, str]:
    """Ready when Redis answers; otherwise 503 `unavailable` with Retry-After, like every route."""
    try:
        services.store.ping()
    except Exception as exc:
        raise Unavailable(f"redis: {type(exc).__name__}: {exc}") from exc
    return {"status": "ready", "redis": "ok"}
