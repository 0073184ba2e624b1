"""The submission API: accepts jobs, routes them to GPU-typed queues, reports their state.

It never imports torch or diffusers: it starts fast and fits a small image.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from scheduler.api import batches, files, health, jobs, models, webhooks
from scheduler.services import Services
from scheduler.sweeper import running_sweeper
from shared.errors import ErrorCode, ReelForgeError, error_body
from shared.schemas import FieldRuleError, describe_error
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    services = Services.build(settings or get_settings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        with running_sweeper(services):
            yield

    api = FastAPI(title="ReelForge", version="0.1.0", lifespan=lifespan)
    api.state.services = services
    for module in (health, jobs, batches, models, webhooks, files):
        api.include_router(module.router)
    api.add_exception_handler(ReelForgeError, _on_reelforge_error)  # type: ignore[arg-type]
    api.add_exception_handler(FieldRuleError, _on_field_rule)  # type: ignore[arg-type]
    api.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    return api


async def _on_reelforge_error(_: Request, exc: ReelForgeError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status_code)


async def _on_field_rule(_: Request, exc: FieldRuleError) -> JSONResponse:
    return JSONResponse(error_body(ErrorCode.INVALID_INPUT, str(exc), exc.field), status_code=422)


async def _on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [dict(zip(("field", "rule"), describe_error(e), strict=True)) for e in exc.errors()]
    first = errors[0]
    message = f"{first['field']}: {first['rule']}"
    return JSONResponse(
        error_body(ErrorCode.INVALID_INPUT, message, first["field"], errors=errors), status_code=422
    )
