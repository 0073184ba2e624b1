"""Jobs: submit (the catalog's inference route, optionally held until the job ends), read, list,
cancel, and each job's event stream (Server-Sent Events)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from scheduler.api.deps import COMMON_ERRORS, Owner, PageCursor, ServicesDep, SubmitOwner, error_responses
from scheduler.api.examples import SUBMIT_EXAMPLES
from scheduler.events import START, EventKind, event_kind, parse_entry_id
from scheduler.idempotency import HEADER as IDEMPOTENCY_HEADER
from scheduler.idempotency import wait_for_created
from scheduler.services import Services
from scheduler.submission import accept_job, plan_job
from shared.catalog import MODEL_SLUG
from shared.errors import AlreadyFinished, ErrorCode, InvalidTransition
from shared.jobs import JobRecord
from shared.paging import cut
from shared.schemas import InferenceRequest, JobPage, JobView
from shared.states import JobStatus

router = APIRouter(tags=["jobs"], responses=COMMON_ERRORS)

PREFER_WAIT = re.compile(r"(?:^|[;,\s])wait(?:\s*=\s*(\d+(?:\.\d+)?))?\s*(?:$|[;,])", re.IGNORECASE)


def requested_wait_s(prefer: str | None, cap_s: float) -> float | None:
    """Seconds to hold a submission: `Prefer: wait` (the cap) or `Prefer: wait=N` (N, at most the cap);
    None without a wait preference (RFC 7240)."""
    match = PREFER_WAIT.search(prefer or "")
    if match is None:
        return None
    return min(float(match.group(1)), cap_s) if match.group(1) else cap_s


def _submit(
    services: Services, owner: str, body: InferenceRequest, idempotency_key: str | None
) -> tuple[JobRecord, bool]:
    """The job, and whether it is new (False: its `Idempotency-Key` was sent before)."""
    store = services.store
    job = plan_job(store, services.settings, owner, body)
    if idempotency_key is None:
        return accept_job(store, services.celery, job), True
    held = services.idempotency.reserve(owner, idempotency_key, body, job.id)
    if held.new:
        try:
            return accept_job(store, services.celery, job, keep_on_failure=True), True
        except Exception:
            # A job recorded but not yet sent stays queued (the sweeper sends it): a retry with this key
            # gets it. One never recorded leaves the key free for the retry to create it.
            if store.get(job.id) is None:
                services.idempotency.release(owner, idempotency_key)
            raise
    wait_for_created(lambda job_id: store.get(job_id) is not None, held.id)
    return store.require(held.id), False


@router.post(
    f"/v1/inference/{MODEL_SLUG}",
    status_code=202,
    responses={
        200: {
            "model": JobView,
            "description": "The same job: its `Idempotency-Key` was sent before; or, with `Prefer: wait`, "
            "the job ended within the wait",
        }
    },
)
async def submit(
    body: Annotated[InferenceRequest, Body(openapi_examples=SUBMIT_EXAMPLES)],
    owner: SubmitOwner,
    services: ServicesDep,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER)] = None,
) -> JobView:
    """202 with a new job; 200 with the same job when an `Idempotency-Key` is replayed.

    **Synchronous wait**: send `Prefer: wait` (up to `REELFORGE_MAX_WAIT_S`) or `Prefer: wait=N` (N
    seconds, capped by it) to hold the answer until the job ends: then 200 with the ended job, or 202
    with the job as it is when the wait runs out (`Preference-Applied` echoes the wait used). The wait
    blocks on the job's event stream, not on a server thread."""
    job, new = await run_in_threadpool(_submit, services, owner, body, idempotency_key)
    wait_s = requested_wait_s(request.headers.get("prefer"), services.settings.max_wait_s)
    if wait_s is not None:
        job = await services.feed.wait_ended(job.id, job, wait_s)
        response.headers["Preference-Applied"] = f"wait={wait_s:g}"
    response.status_code = 200 if not new or job.status.terminal else 202
    return await run_in_threadpool(services.view, job)


@router.get("/v1/jobs/{job_id}", responses=error_responses(404))
def get_job(job_id: str, owner: Owner, services: ServicesDep) -> JobView:
    return services.view(services.store.owned(job_id, owner))


EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "description": "One event: `event` is status, progress or completed; `data` the JSON",
                    "properties": {
                        "id": {"type": "string"},
                        "event": {"type": "string", "enum": [k.value for k in EventKind]},
                        "data": {"type": "string"},
                        "retry": {"type": "integer"},
                    },
                }
            }
        },
        "description": "The events, until the job ends",
    },
    204: {"description": "Resumed after the job's last event: nothing more will come"},
}
EVENTS_DOC = """The job's progress as Server-Sent Events (`text/event-stream`), until it ends.

Events: `status` (the job as `GET /v1/jobs/{id}` shows it: first on connect, then on each status
change), `progress` (`{id, status, progress}`: the phase, `loading`, `denoising` with iteration
`step` of `total` of the diffusion-forcing schedule, `decoding`, `encoding`, `uploading`) and a final
`completed` (the ended job), after which the stream closes. Each event's `id` is its place in the job's
stream: reconnect with `Last-Event-ID` to resume after it (a job that ended before that reconnect
answers 204, which tells `EventSource` to stop). A comment line is sent every
`REELFORGE_EVENTS_HEARTBEAT_S` without an event, so proxies keep the connection open.

    curl -N -H "Authorization: Bearer $REELFORGE_API_KEY" $REELFORGE_API_BASE/v1/jobs/ID/events
"""


@router.get(
    "/v1/jobs/{job_id}/events",
    description=EVENTS_DOC,
    response_class=StreamingResponse,
    responses=EVENT_STREAM | error_responses(404),
)
async def events(job_id: str, owner: Owner, services: ServicesDep, request: Request) -> Response:
    job = await run_in_threadpool(services.store.owned, job_id, owner)
    resume = request.headers.get("last-event-id")
    last_id = parse_entry_id(resume) if resume else None
    if last_id is not None and job.status.terminal and not await services.feed.after(job_id, last_id, None):
        return Response(status_code=204)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        _event_stream(services, job, last_id), media_type="text/event-stream", headers=headers
    )


async def _event_stream(services: Services, job: JobRecord, last_id: str | None) -> AsyncIterator[str]:
    feed, seen = services.feed, None
    yield "retry: 2000\n\n"
    if last_id is None:
        latest = await feed.latest(job.id)
        last_id, seen = latest if latest else (START, job)
        yield await _frame(services, event_kind(None, seen) or EventKind.STATUS, last_id, seen)
        if seen.status.terminal:
            return
    async for entry in feed.follow(job.id, last_id, services.settings.events_heartbeat_s):
        if entry is None:
            yield ": heartbeat\n\n"
            continue
        entry_id, current = entry
        kind = event_kind(seen, current)
        seen = current
        if kind is not None:
            yield await _frame(services, kind, entry_id, current)
        if current.status.terminal:
            return


async def _frame(services: Services, kind: EventKind, entry_id: str, job: JobRecord) -> str:
    if kind == EventKind.PROGRESS:
        progress = job.progress.model_dump_json() if job.progress else "null"
        data = f'{{"id":"{job.id}","status":"{job.status.value}","progress":{progress}}}'
    else:
        data = (await run_in_threadpool(services.view, job)).model_dump_json()
    return f"id: {entry_id}\nevent: {kind.value}\ndata: {data}\n\n"


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
    before: PageCursor,
    status: Annotated[JobStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JobPage:
    """The caller's jobs, newest first; `next_cursor` pages."""
    page, next_cursor = cut(
        services.store.list_for(owner, status=status, limit=limit + 1, before=before), limit
    )
    return JobPage(jobs=[services.view(j) for j in page], next_cursor=next_cursor)
