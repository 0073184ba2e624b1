"""Probes: liveness (the process answers) and readiness (Redis answers)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from scheduler.api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Redis is unreachable"}})
def readyz(services: ServicesDep) -> JSONResponse:
    try:
        services.store.ping()
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "redis": str(exc)}, status_code=503)
    return JSONResponse({"status": "ready", "redis": "ok"})
