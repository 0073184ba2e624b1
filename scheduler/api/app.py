"""The submission API: accepts jobs, routes them to GPU-typed queues, reports their state.

It never imports torch or diffusers: it starts fast and fits a small image.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError
from starlette.exceptions import HTTPException

from scheduler.api import batches, docs, files, health, jobs, metrics, models, playground, webhooks
from scheduler.api.limits import BodyLimit
from scheduler.metrics import RequestTimer
from scheduler.services import Services
from scheduler.sweeper import running_sweeper
from shared.errors import ErrorCode, ReelForgeError, Unavailable, error_body
from shared.schemas import FieldRuleError, describe_error
from shared.settings import Settings, get_settings

HTTP_CODES = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED, 401: ErrorCode.UNAUTHORIZED}


def create_app(settings: Settings | None = None) -> FastAPI:
    services = Services.build(settings or get_settings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        with running_sweeper(services):
            yield
        await services.feed.close()

    # /docs and /redoc come from `scheduler.api.docs`, with their assets served from our package.
    api = FastAPI(
        title="ReelForge",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    api.state.services = services
    for module in (health, jobs, batches, models, webhooks, files, metrics, playground, docs):
        api.include_router(module.router)
    settings = services.settings
    api.add_middleware(
        BodyLimit, default_bytes=settings.max_body_bytes, batch_bytes=settings.batch_max_body_bytes
    )
    api.add_exception_handler(ReelForgeError, _on_reelforge_error)  # type: ignore[arg-type]
    api.add_exception_handler(FieldRuleError, _on_field_rule)  # type: ignore[arg-type]
    api.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    api.add_exception_handler(HTTPException, _on_http)  # type: ignore[arg-type]
    for outage in (redis.ConnectionError, redis.TimeoutError, OperationalError):
        api.add_exception_handler(outage, _on_outage)
    api.add_middleware(RequestTimer, metrics=services.metrics)
    return api


DESCRIPTION = """Text-to-video with SkyReels-V2 Diffusion-Forcing on GPU pools.

Click **Authorize** and paste an API key (`REELFORGE_API_KEYS`; the embedded stack's is `rf-dev-key`).
Submit with `POST /v1/inference/skywork-skyreels-v2` (add `Prefer: wait` to get the ended job back),
follow it with `GET /v1/jobs/{id}/events` (Server-Sent Events), or try it all in [/playground](/playground).
Every error has the same body: `{"error": {"code", "message", "field"?}}`.
"""


class ErrorResponse(JSONResponse):
    """Error bodies escape non-ASCII: a message quoting bad input (a lone surrogate, say) still encodes."""

    def render(self, content: object) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()


def _answer(exc: ReelForgeError) -> JSONResponse:
    return ErrorResponse(exc.body(), status_code=exc.status_code, headers=exc.headers())


async def _on_reelforge_error(_: Request, exc: ReelForgeError) -> JSONResponse:
    return _answer(exc)


async def _on_outage(_: Request, exc: Exception) -> JSONResponse:
    return _answer(Unavailable(f"the job store or queue is unreachable: {type(exc).__name__}; retry shortly"))


async def _on_http(_: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own answers (unknown route, wrong method, unreadable body) in our error body."""
    code = HTTP_CODES.get(exc.status_code, ErrorCode.BAD_REQUEST)
    return ErrorResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


async def _on_field_rule(_: Request, exc: FieldRuleError) -> JSONResponse:
    return ErrorResponse(error_body(ErrorCode.INVALID_INPUT, str(exc), exc.field), status_code=422)


async def _on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [dict(zip(("field", "rule"), describe_error(e), strict=True)) for e in exc.errors()]
    first = errors[0]
    message = f"{first['field']}: {first['rule']}"
    return ErrorResponse(
        error_body(ErrorCode.INVALID_INPUT, message, first["field"], errors=errors), status_code=422
    )
