"""The submission API: accepts jobs, routes them to GPU-typed queues, reports their state.

It never imports torch or diffusers: it starts fast and fits a small image.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse

from scheduler.api.auth import owner_of
from scheduler.api.models import install_runtime_routes
from scheduler.api.webhooks import install_webhook_routes
from scheduler.batches import install_batch_routes
from scheduler.idempotency import HEADER as IDEMPOTENCY_HEADER
from scheduler.idempotency import IdempotencyStore, wait_for_job
from scheduler.submission import accept_job, create_job, plan_job
from scheduler.views import job_view
from shared.broker import make_celery, restore_unacked
from shared.catalog import MODEL_SLUG
from shared.errors import AlreadyFinished, ErrorCode, InvalidTransition, NotFound, ReelForgeError
from shared.jobstore import JobStore
from shared.schemas import FieldRuleError, InferenceRequest, JobPage, JobView, describe_error
from shared.settings import Settings, get_settings
from shared.states import JobStatus
from shared.storage import LocalStorage, make_storage
from shared.webhooks.events import make_emitter

log = logging.getLogger(__name__)
Owner = Annotated[str, Depends(owner_of)]


def sweep(app: FastAPI) -> None:
    """Expire queued jobs past their start deadline; put dead workers' tasks back on their queues."""
    for pool in app.state.settings.pools:
        for job_id in app.state.store.expire_overdue(pool.queue):
            log.info("job %s expired before it started", job_id)
    for job_id, code in app.state.store.reap_overdue(app.state.settings.reap_grace_s):
        log.warning("job %s ended %s by the sweeper", job_id, code)
    restore_unacked(app.state.celery)
    if isinstance(app.state.storage, LocalStorage):
        app.state.storage.delete_older_than(app.state.settings.retention_days)


def _sweep_forever(app: FastAPI, stop: threading.Event) -> None:
    while not stop.wait(app.state.settings.sweep_interval_s):
        try:
            sweep(app)
        except Exception:
            log.exception("sweep failed")


@contextmanager
def _sweeper(app: FastAPI) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=_sweep_forever, args=(app, stop), name="sweeper", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with _sweeper(app):
            yield

    app = FastAPI(title="ReelForge", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.store = JobStore.from_url(settings.redis_url, settings.job_ttl_s, settings.max_attempts)
    app.state.celery = make_celery(settings)
    app.state.storage = make_storage(settings)
    # Cancel and expiry happen here: their webhooks are enqueued from here too.
    app.state.store.listeners.append(
        make_emitter(app.state.celery, settings, client=app.state.store.r, storage=app.state.storage)
    )
    app.state.idempotency = IdempotencyStore(app.state.store.r, settings.idempotency_ttl_s)
    _install_error_handlers(app)
    install_runtime_routes(app)
    install_webhook_routes(app)
    install_batch_routes(app)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        try:
            app.state.store.ping()
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "redis": str(exc)}, status_code=503)
        return JSONResponse({"status": "ready", "redis": "ok"})

    @app.post(f"/v1/inference/{MODEL_SLUG}", status_code=202)
    def submit(
        body: InferenceRequest,
        owner: Owner,
        response: Response,
        idempotency_key: Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER)] = None,
    ) -> JobView:
        """202 with a new job; 200 with the same job when an `Idempotency-Key` is replayed."""
        if idempotency_key is None:
            return job_view(app, create_job(app, owner, body))
        store: JobStore = app.state.store
        job = plan_job(app, owner, body)
        held = app.state.idempotency.reserve(owner, idempotency_key, body, job.id)
        if held.new:
            try:
                return job_view(app, accept_job(app, job))
            except Exception:
                # Not accepted (the job, if recorded, ended failed): a retry with this key may try again.
                app.state.idempotency.release(owner, idempotency_key)
                raise
        wait_for_job(lambda job_id: store.get(job_id) is not None, held.job_id)
        response.status_code = 200
        return job_view(app, store.require(held.job_id))

    @app.get("/v1/jobs/{job_id}")
    def get_job(job_id: str, owner: Owner) -> JobView:
        return job_view(app, app.state.store.owned(job_id, owner))

    @app.post("/v1/jobs/{job_id}/cancel")
    def cancel(job_id: str, owner: Owner) -> JobView:
        """A queued job never starts; a running one stops at its next denoising iteration."""
        app.state.store.owned(job_id, owner)
        try:
            job = app.state.store.end(
                job_id, JobStatus.CANCELED, ErrorCode.CANCELED, "canceled at the user's request"
            )
        except InvalidTransition as exc:
            raise AlreadyFinished(
                f"job {job_id} already {app.state.store.require(job_id).status}; nothing changed"
            ) from exc
        return job_view(app, job)

    @app.get("/v1/jobs")
    def list_jobs(
        owner: Owner,
        status: Annotated[JobStatus | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> JobPage:
        before = _parse_cursor(cursor)
        jobs = app.state.store.list_for(owner, status=status, limit=limit + 1, before=before)
        page, more = jobs[:limit], len(jobs) > limit
        next_cursor = str(page[-1].created_at.timestamp()) if more and page else None
        return JobPage(jobs=[job_view(app, j) for j in page], next_cursor=next_cursor)

    @app.get("/v1/files/{key:path}", include_in_schema=False)
    def download(key: str, expires: int, sig: str) -> FileResponse:
        storage = app.state.storage
        if not isinstance(storage, LocalStorage) or not storage.verify(key, expires, sig):
            raise NotFound("link is invalid or expired")
        path = storage.path(key)
        if not path.is_file():
            raise NotFound(f"{key} not found")
        return FileResponse(path, media_type="video/mp4" if key.endswith(".mp4") else None)

    return app


def _parse_cursor(cursor: str | None) -> float | None:
    if cursor is None:
        return None
    try:
        return float(cursor)
    except ValueError as exc:
        raise FieldRuleError("cursor", "must be the next_cursor of a previous page") from exc


def _error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {"error": error | extra}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ReelForgeError)
    async def on_reelforge_error(_: Request, exc: ReelForgeError) -> JSONResponse:
        return JSONResponse(_error_body(exc.code, exc.message, exc.field), status_code=exc.status_code)

    @app.exception_handler(FieldRuleError)
    async def on_field_rule(_: Request, exc: FieldRuleError) -> JSONResponse:
        return JSONResponse(_error_body("invalid_input", str(exc), exc.field), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [dict(zip(("field", "rule"), describe_error(e), strict=True)) for e in exc.errors()]
        first = errors[0]
        return JSONResponse(
            _error_body("invalid_input", f"{first['field']}: {first['rule']}", first["field"], errors=errors),
            status_code=422,
        )
