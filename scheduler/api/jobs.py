"""Jobs: submit (the catalog's inference route), read, list, cancel."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from scheduler.api.deps import COMMON_ERRORS, Owner, ServicesDep, SubmitOwner, error_responses
from scheduler.idempotency import HEADER as IDEMPOTENCY_HEADER
from scheduler.idempotency import wait_for_job
from scheduler.submission import accept_job, plan_job
from shared.catalog import MODEL_SLUG
from shared.errors import AlreadyFinished, ErrorCode, InvalidInput, InvalidTransition
from shared.schemas import InferenceRequest, JobPage, JobView
from shared.states import JobStatus

router = APIRouter(tags=["jobs"], responses=COMMON_ERRORS)


@router.post(
    f"/v1/inference/{MODEL_SLUG}",
    status_code=202,
    responses={200: {"model": JobView, "description": "The same job: its `Idempotency-Key` was sent before"}},
)
def submit(
    body: InferenceRequest,
    owner: SubmitOwner,
    services: ServicesDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER)] = None,
) -> JobView:
    """202 with a new job; 200 with the same job when an `Idempotency-Key` is replayed."""
    store = services.store
    job = plan_job(store, services.settings, owner, body)
    if idempotency_key is None:
        return services.view(accept_job(store, services.celery, job))
    held = services.idempotency.reserve(owner, idempotency_key, body, job.id)
    if held.new:
        try:
            return services.view(accept_job(store, services.celery, job, keep_on_failure=True))
        except Exception:
            # A job recorded but not yet sent stays queued (the sweeper sends it): a retry with this key
            # gets it. One never recorded leaves the key free for the retry to create it.
            if store.get(job.id) is None:
                services.idempotency.release(owner, idempotency_key)
            raise
    wait_for_job(lambda job_id: store.get(job_id) is not None, held.job_id)
    response.status_code = 200
    return services.view(store.require(held.job_id))


@router.get("/v1/jobs/{job_id}", responses=error_responses(404))
def get_job(job_id: str, owner: Owner, services: ServicesDep) -> JobView:
    return services.view(services.store.owned(job_id, owner))


@router.post("/v1/jobs/{job_id}/cancel", responses=error_responses(404, 409))
def cancel(job_id: str, owner: Owner, services: ServicesDep) -> JobView:
    """A queued job never starts; a running one stops at its next denoising iteration."""
    store = services.store
    store.owned(job_id, owner)
    try:
        job = store.end(job_id, JobStatus.CANCELED, ErrorCode.CANCELED, "canceled at the user's request")
    except InvalidTransition as exc:
        raise AlreadyFinished(
            f"job {job_id} already {store.require(job_id).status}; nothing changed"
        ) from exc
    return services.view(job)


@router.get("/v1/jobs")
def list_jobs(
    owner: Owner,
    services: ServicesDep,
    status: Annotated[JobStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> JobPage:
    """The caller's jobs, newest first; `next_cursor` pages."""
    before = _parse_cursor(cursor)
    jobs = services.store.list_for(owner, status=status, limit=limit + 1, before=before)
    page, more = jobs[:limit], len(jobs) > limit
    next_cursor = str(page[-1].created_at.timestamp()) if more and page else None
    return JobPage(jobs=[services.view(j) for j in page], next_cursor=next_cursor)


def _parse_cursor(cursor: str | None) -> float | None:
    if cursor is None:
        return None
    try:
        before = float(cursor)
    except ValueError:
        before = math.nan
    if not math.isfinite(before):
        raise InvalidInput("cursor: must be the next_cursor of a previous page", field="cursor")
    return before
