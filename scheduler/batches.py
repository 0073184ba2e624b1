"""Batches: many requests in one submission, validated whole, followed to a manifest.

POST /v1/batches                 a JSON array, `{"defaults": {...}, "requests": [...]}`, or a JSONL body
                                 (`application/x-ndjson` / `application/jsonl`, `?defaults=` JSON)
GET  /v1/batches/{id}            counts per status, progress, job ids; the manifest once every job ended
POST /v1/batches/{id}/cancel     cancels every job not yet finished

Every line is validated (the request schema, then routing) before any job is created: one bad line
refuses the batch with a 422 naming the line and the field, and nothing is queued.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from scheduler.idempotency import wait_for_created
from scheduler.routing import Signals
from scheduler.services import Services
from scheduler.submission import accept_job, plan_job
from shared.batchstore import BatchRecord
from shared.errors import ErrorCode, InvalidLines, InvalidTransition, NotFound, ReelForgeError
from shared.jobs import JobRecord
from shared.paging import cut
from shared.schemas import InferenceRequest, describe_error
from shared.states import JobStatus

log = logging.getLogger(__name__)
JSONL_TYPES = frozenset(
    {"application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines"}
)


class BatchCounts(BaseModel):
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    canceled: int = 0
    expired: int = 0


class BatchManifest(BaseModel):
    """The batch's manifest: JSONL in storage, one line per request in submission order."""

    storage_key: str
    url: str
    """Signed on every read of the batch."""
    url_expires_at: datetime
    lines: int
    video_urls_expire_at: datetime | None = None
    """The video links inside the manifest were signed when it was written and expire then; each line
    also has the video's `storage_key`, and `GET /v1/jobs/{id}` signs a fresh link."""


class BatchLinks(BaseModel):
    self: str
    cancel: str


class BatchView(BaseModel):
    """`POST /v1/batches`, `GET /v1/batches/{id}`, `POST /v1/batches/{id}/cancel`."""

    id: str
    status: Literal["in_progress", "finalizing", "completed"]
    """`in_progress` while a job has not ended; `finalizing` while the manifest is being written;
    `completed` once it is available."""
    total: int
    counts: BatchCounts
    progress: float
    """Fraction of the batch's jobs that have ended (any terminal state)."""
    created_at: datetime
    canceled_at: datetime | None = None
    completed_at: datetime | None = None
    job_ids: list[str]
    """In submission order."""
    lines: list[int]
    """Each job's line in the submission (1-based), parallel to `job_ids`."""
    manifest: BatchManifest | None = None
    links: BatchLinks


def _problem(
    rule: str, *, line: int | None = None, field: str | None = None, code: ErrorCode = ErrorCode.INVALID_INPUT
) -> dict:
    where = f"line {line}: " if line is not None else ""
    message = f"{where}{field}: {rule}" if field else f"{where}{rule}"
    return {"code": code, "line": line, "field": field, "rule": rule, "message": message}


def _refuse(rule: str, field: str | None = None, status_code: int = 422) -> InvalidLines:
    """A problem with the whole body (not one line)."""
    return InvalidLines([_problem(rule, field=field)], status_code)


def load_json(text: str) -> Any:
    """JSON, or ValueError saying why not: malformed, nested too deeply, or a number too long."""
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, and integers past Python's digit limit
        raise ValueError(str(exc)) from exc


def _jsonl_items(text: str, line_limit: int) -> list[tuple[int, Any]]:
    items: list[tuple[int, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(line.encode()) > line_limit:
            items.append((number, _NotJson(f"longer than {line_limit} bytes (REELFORGE_MAX_BODY_BYTES)")))
            continue
        try:
            items.append((number, load_json(line)))
        except ValueError as exc:
            items.append((number, _NotJson(str(exc))))
    return items


def _json_items(text: str) -> tuple[list[tuple[int, Any]], Any]:
    """The lines of a JSON body, and its `defaults` if it has them (None otherwise)."""
    try:
        body = load_json(text)
    except ValueError as exc:
        raise _refuse(f"not valid JSON: {exc}", "body") from exc
    defaults = None
    if isinstance(body, dict):
        unknown = sorted(set(body) - {"defaults", "requests"})
        if unknown or "requests" not in body:
            raise _refuse(
                'expected a JSON array of requests or {"defaults": {...}, "requests": [...]}'
                + (f"; unknown keys: {', '.join(unknown)}" if unknown else ""),
                "body",
            )
        defaults, body = body.get("defaults"), body["requests"]
    if not isinstance(body, list):
        raise _refuse("must be a JSON array of requests", "requests")
    return list(enumerate(body, start=1)), defaults


def _checked_defaults(defaults: Any) -> dict[str, Any]:
    if defaults is None:
        return {}
    if not isinstance(defaults, dict):
        raise _refuse("must be a JSON object of request fields", "defaults")
    unknown = sorted(set(defaults) - set(InferenceRequest.model_fields))
    if unknown:
        raise _refuse(f"unknown fields {', '.join(unknown)}; not part of the request schema", "defaults")
    return defaults


def parse_body(
    content_type: str, raw: bytes, query_defaults: str | None, line_limit: int
) -> tuple[list[tuple[int, Any]], dict[str, Any]]:
    """The body's (line, object) pairs and the defaults every line starts from."""
    defaults: Any = None
    if query_defaults is not None:
        try:
            defaults = load_json(query_defaults)
        except ValueError as exc:
            raise _refuse(f"not valid JSON: {exc}", "defaults") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse(f"not UTF-8: {exc}", "body") from exc
    if content_type in JSONL_TYPES:
        items = _jsonl_items(text, line_limit)
    elif content_type == "application/json":
        items, in_body = _json_items(text)
        if in_body is not None and defaults is not None:
            raise _refuse("given both in the body and as a query parameter; give one", "defaults")
        defaults = in_body if in_body is not None else defaults
    else:
        raise _refuse(
            f"unsupported content type {content_type!r}: send application/json (an array of requests "
            'or {"defaults", "requests"}) or application/x-ndjson (one request per line)',
            "content-type",
            415,
        )
    return items, _checked_defaults(defaults)


class _NotJson:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def plan_batch(
    services: Services, owner: str, items: list[tuple[int, Any]], defaults: dict[str, Any], batch_id: str
) -> list[tuple[int, JobRecord]]:
    """Every line validated and routed, or InvalidLines listing every bad line. Stores nothing."""
    limit = services.settings.batch_max_requests
    if not items:
        raise _refuse("must hold at least one request", "requests")
    if len(items) > limit:
        raise _refuse(
            f"at most {limit} requests per batch (REELFORGE_BATCH_MAX_REQUESTS), got {len(items)}", "requests"
        )
    planned: list[tuple[int, JobRecord]] = []
    problems: list[dict[str, Any]] = []
    signals: dict[str, Signals] = {}
    for line, item in items:
        if isinstance(item, _NotJson):
            problems.append(_problem(f"not valid JSON: {item.reason}", line=line))
            continue
        if not isinstance(item, dict):
            problems.append(_problem("must be a JSON object (one request)", line=line))
            continue
        try:
            body = InferenceRequest.model_validate(defaults | item)
        except ValidationError as exc:
            field, rule = describe_error(exc.errors()[0])
            problems.append(_problem(rule, line=line, field=field))
            continue
        try:
            planned.append(
                (line, plan_job(services.store, services.settings, owner, body, batch_id, signals))
            )
        except ReelForgeError as exc:
            rule = exc.message.removeprefix(f"{exc.field}: ") if exc.field else exc.message
            problems.append(_problem(rule, line=line, field=exc.field, code=exc.code))
    if problems:
        raise InvalidLines(problems)
    return planned


def submit_batch(
    services: Services,
    owner: str,
    items: list[tuple[int, Any]],
    defaults: dict[str, Any],
    idempotency_key: str | None = None,
) -> tuple[BatchView, bool]:
    """The batch, and whether it is new (False: its `Idempotency-Key` was sent before, with the same
    requests: the batch it made then)."""
    batch_id = uuid.uuid4().hex
    planned = plan_batch(services, owner, items, defaults, batch_id)
    batches = services.batches.batches
    if idempotency_key is not None:
        requests = [job.request for _, job in planned]
        held = services.idempotency.reserve(owner, idempotency_key, requests, batch_id, kind="batch")
        if not held.new:
            # Not just recorded: all its jobs accepted (a view of a half-made batch counts the jobs
            # not yet created as ended, and could write its manifest early).
            wait_for_created(batches.queued, held.id)
            return batch_view(services, batches.get(held.id)), False
    try:
        _create(services, owner, batch_id, planned)
    except Exception:
        if idempotency_key is not None:
            # The caller is told it failed and sends it again: that retry makes a new batch.
            services.idempotency.release(owner, idempotency_key, kind="batch")
        raise
    return batch_view(services, batches.get(batch_id)), True


def _create(services: Services, owner: str, batch_id: str, planned: list[tuple[int, JobRecord]]) -> None:
    batches = services.batches.batches
    created_at = batches.create(
        batch_id, owner, [job.id for _, job in planned], [line for line, _ in planned]
    )
    for created, (_, job) in enumerate(planned):
        try:
            accept_job(services.store, services.celery, job)
        except Exception:
            _abandon(services, batch_id, [j for _, j in planned[:created]], job)
            raise
    batches.mark_queued(batch_id, owner, created_at)


def _abandon(services: Services, batch_id: str, accepted: list[JobRecord], failed: JobRecord) -> None:
    """A job could not be queued: the batch keeps the jobs that exist, the queued ones are canceled
    (the caller is told the submission failed and will send it again), and it completes."""
    store = services.store
    exists = accepted + ([failed] if store.get(failed.id) is not None else [])
    batches = services.batches.batches
    batches.truncate(batch_id, len(exists))
    if not exists:
        return
    batches.mark_canceled(batch_id)
    for job in accepted:
        with contextlib.suppress(InvalidTransition):
            store.end(
                job.id, JobStatus.CANCELED, ErrorCode.CANCELED, f"batch {batch_id} could not be fully queued"
            )


def batch_view(services: Services, batch: BatchRecord | None) -> BatchView:
    if batch is None:
        raise NotFound("batch not found")
    tracker = services.batches
    records = tracker.batches.jobs(batch)
    if batch.manifest_key is None:
        # The listener writes the manifest as the last job ends; this covers a process that died
        # before the relay carried out that job's outbox entry, or a failed upload.
        try:
            batch = tracker.finish_if_complete(batch, records)
        except Exception:
            log.exception("writing the manifest of batch %s failed; a later read retries", batch.id)
    counts = BatchCounts()
    ended = 0
    for job in records:
        if job is None:
            ended += 1
            continue
        setattr(counts, job.status.value, getattr(counts, job.status.value) + 1)
        ended += job.status.terminal
    manifest = None
    if batch.manifest_key is not None:
        url, expires = services.storage.url(batch.manifest_key)
        manifest = BatchManifest(
            storage_key=batch.manifest_key,
            url=url,
            url_expires_at=expires,
            lines=len(batch.job_ids),
            video_urls_expire_at=batch.video_urls_expire_at,
        )
    total = len(batch.job_ids)
    if manifest is not None:
        status: Literal["in_progress", "finalizing", "completed"] = "completed"
    else:
        status = "finalizing" if ended == total else "in_progress"
    base = f"{services.settings.public_base_url.rstrip('/')}/v1/batches/{batch.id}"
    return BatchView(
        id=batch.id,
        status=status,
        total=total,
        counts=counts,
        progress=round(ended / total, 4) if total else 1.0,
        created_at=batch.created_at,
        canceled_at=batch.canceled_at,
        completed_at=batch.completed_at,
        job_ids=batch.job_ids,
        lines=batch.lines,
        manifest=manifest,
        links=BatchLinks(self=base, cancel=f"{base}/cancel"),
    )


class BatchPage(BaseModel):
    batches: list[BatchView]
    next_cursor: str | None = None


def list_batches(services: Services, owner: str, limit: int, before: float | None) -> BatchPage:
    """The owner's batches, newest first; `next_cursor` pages."""
    page, next_cursor = cut(services.batches.batches.list_for(owner, limit + 1, before), limit)
    return BatchPage(batches=[batch_view(services, b) for b in page], next_cursor=next_cursor)


def owned_batch(services: Services, batch_id: str, owner: str) -> BatchRecord:
    batch = services.batches.batches.get(batch_id)
    if batch is None or batch.owner != owner:
        raise NotFound(f"batch {batch_id} not found")
    return batch


def cancel_batch(services: Services, batch_id: str, owner: str) -> BatchView:
    batch = owned_batch(services, batch_id, owner)
    store = services.store
    services.batches.batches.mark_canceled(batch_id)
    for job in services.batches.batches.jobs(batch):
        if job is None or job.status.terminal:
            continue
        with contextlib.suppress(InvalidTransition):  # it ended meanwhile
            store.end(
                job.id,
                JobStatus.CANCELED,
                ErrorCode.CANCELED,
                f"batch {batch_id} canceled at the user's request",
            )
    return batch_view(services, owned_batch(services, batch_id, owner))
