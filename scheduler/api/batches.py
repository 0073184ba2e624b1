"""Batch routes: submit many requests at once, follow them, cancel them (logic in `scheduler.batches`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from scheduler.api.deps import Owner, ServicesDep
from scheduler.batches import BatchView, batch_view, cancel_batch, owned_batch, parse_body, submit_batch

router = APIRouter(tags=["batches"])

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


@router.post("/v1/batches", status_code=202, openapi_extra=_BODY_DOC)
async def submit(
    request: Request,
    owner: Owner,
    services: ServicesDep,
    defaults: Annotated[
        str | None, Query(description="JSON object of request fields every line starts from")
    ] = None,
) -> BatchView:
    """Validate every line (schema, then routing), then create one job per line."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    items, merged_defaults = parse_body(content_type, await request.body(), defaults)
    return await run_in_threadpool(submit_batch, services, owner, items, merged_defaults)


@router.get("/v1/batches/{batch_id}")
def get_batch(batch_id: str, owner: Owner, services: ServicesDep) -> BatchView:
    return batch_view(services, owned_batch(services, batch_id, owner))


@router.post("/v1/batches/{batch_id}/cancel")
def cancel(batch_id: str, owner: Owner, services: ServicesDep) -> BatchView:
    """Cancel every job of the batch not yet finished; finished ones are left as they are."""
    return cancel_batch(services, batch_id, owner)
