"""Batch routes: submit many requests at once, follow them, cancel them (logic in `scheduler.batches`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from scheduler.api.deps import COMMON_ERRORS, Owner, ServicesDep, SubmitOwner, error_responses
from scheduler.batches import BatchView, batch_view, cancel_batch, owned_batch, parse_body, submit_batch

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


@router.post("/v1/batches", status_code=202, openapi_extra=_BODY_DOC, responses=error_responses(415))
async def submit(
    request: Request,
    owner: SubmitOwner,
    services: ServicesDep,
    defaults: Annotated[
        str | None, Query(description="JSON object of request fields every line starts from")
    ] = None,
) -> BatchView:
    """Validate every line (schema, then routing), then create one job per line."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    line_limit = services.settings.max_body_bytes
    items, merged_defaults = parse_body(content_type, await request.body(), defaults, line_limit)
    return await run_in_threadpool(submit_batch, services, owner, items, merged_defaults)


@router.get("/v1/batches/{batch_id}", responses=error_responses(404))
def get_batch(batch_id: str, owner: Owner, services: ServicesDep) -> BatchView:
    return batch_view(services, owned_batch(services, batch_id, owner))


@router.post("/v1/batches/{batch_id}/cancel", responses=error_responses(404))
def cancel(batch_id: str, owner: Owner, services: ServicesDep) -> BatchView:
    """Cancel every job of the batch not yet finished; finished ones are left as they are."""
    return cancel_batch(services, batch_id, owner)
