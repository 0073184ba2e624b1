"""Batch routes: submit many requests at once, follow them, cancel them (logic in `scheduler.batches`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from scheduler.api.deps import COMMON_ERRORS, Owner, PageCursor, ServicesDep, SubmitOwner, error_responses
from scheduler.batches import (
    BatchPage,
    BatchView,
    batch_view,
    cancel_batch,
    list_batches,
    owned_batch,
    parse_body,
    submit_batch,
)
from scheduler.idempotency import HEADER as IDEMPOTENCY_HEADER

router = APIRouter(tags=["batches"], responses=COMMON_ERRORS)

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"type": "array", "items": {"type": "object"}},
                        {
                            "type": "object",
                            "properties": {
                                "defaults": {"type": "object"},
                                "requests": {"type": "array", "items": {"type": "object"}},
                            },
                            "required": ["requests"],
                        },
                    ]
                }
            },
            "application/x-ndjson": {"schema": {"type": "string", "description": "one request per line"}},
        },
    }
}


@router.post(
    "/v1/batches",
    status_code=202,
    openapi_extra=_BODY_DOC,
    responses={
        200: {"model": BatchView, "description": "The same batch: its `Idempotency-Key` was sent before"},
        **error_responses(415),
    },
)
async def submit(
    request: Request,
    response: Response,
    owner: SubmitOwner,
    services: ServicesDep,
    defaults: Annotated[
        str | None, Query(description="JSON object of request fields every line starts from")
    ] = None,
    idempotency_key: Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER)] = None,
) -> BatchView:
    """Validate every line (schema, then routing), then create one job per line. 202 with a new batch;
    200 with the same batch when an `Idempotency-Key` is replayed with the same requests."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    line_limit = services.settings.max_body_bytes
    items, merged_defaults = parse_body(content_type, await request.body(), defaults, line_limit)
    batch, new = await run_in_threadpool(
        submit_batch, services, owner, items, merged_defaults, idempotency_key
    )
    response.status_code = 202 if new else 200
    return batch


@router.get("/v1/batches")
def list_all(
    owner: Owner,
    services: ServicesDep,
    before: PageCursor,
    limit: Annotated[int, Query(ge=1, le=20)] = 10,
) -> BatchPage:
    """The caller's batches, newest first (as `GET /v1/batches/{id}` shows each, so a page reads every
    job of its batches: hence the small pages); `next_cursor` pages. Batches are kept as long as jobs
    (`REELFORGE_JOB_TTL_S`); one whose submission failed half-way is not listed."""
    return list_batches(services, owner, limit, before)


@router.get("/v1/batches/{batch_id}", responses=error_responses(404))
def get_batch(batch_id: str, owner: Owner, services: ServicesDep) -> BatchView:
    return batch_view(services, owned_batch(services, batch_id, owner))


@router.post("/v1/batches/{batch_id}/cancel", responses=error_responses(404))
def cancel(batch_id: str, owner: Owner, services: ServicesDep) -> BatchView:
    """Cancel every job of the batch not yet finished; finished ones are left as they are."""
    return cancel_batch(services, batch_id, owner)
