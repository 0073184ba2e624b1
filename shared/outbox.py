"""The outbox: what a committed job move owes the outside world, written in the move's own transaction.

A move that should produce a webhook event (started, progress where filtered, completed) or end a
batch's job appends an entry to one Redis stream in the same MULTI as the move itself, so a committed
terminal state always has its event pending or carried out, whatever happens to the process that
made the move right after. `shared.relay` carries entries out, once per entry id: the id is fixed by
the move (one `completed` per job, one `started` per attempt), so a redelivered or re-run task that
repeats a move cannot add a second event.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from shared.jobs import JobRecord
from shared.schemas import WebhookEvent
from shared.states import JobStatus


class OutboxEntry(BaseModel):
    """One effect of one move."""

    id: str
    """Fixed by the move: carrying an entry out twice has the effect of once."""
    kind: Literal["webhook", "batch"]
    job_id: str
    event: WebhookEvent | None = None
    record: str
    """The job record (JSON) as the move committed it."""


def event_for(job: JobRecord, before: JobStatus) -> WebhookEvent | None:
    """The event a committed change makes, if any."""
    if job.status.terminal and not before.terminal:
        return WebhookEvent.COMPLETED
    if job.status == JobStatus.RUNNING and before != JobStatus.RUNNING:
        return WebhookEvent.STARTED
    if job.status == JobStatus.RUNNING and before == JobStatus.RUNNING and job.progress and job.progress.step:
        # A takeover by another worker is RUNNING -> RUNNING too, with its progress reset to 0.
        return WebhookEvent.PROGRESS
    return None


def wanted_event(job: JobRecord, before: JobStatus) -> WebhookEvent | None:
    """The event this change makes, if the job has a webhook and its filter asks for it."""
    if not job.request.get("webhook_url"):
        return None
    event = event_for(job, before)
    wanted = job.request.get("webhook_events_filter") or [WebhookEvent.COMPLETED]
    return event if event is not None and event in wanted else None  # type: ignore[operator]


def _event_id(job: JobRecord, event: WebhookEvent) -> str:
    if event == WebhookEvent.COMPLETED:
        return f"{job.id}:completed"
    if event == WebhookEvent.STARTED:
        return f"{job.id}:started:{job.attempts}"
    step = job.progress.step if job.progress else 0
    phase = job.progress.phase if job.progress else None
    # A new preview is a change of its own at the same step.
    preview = f":preview:{job.preview.frames}" if job.preview else ""
    return f"{job.id}:progress:{job.attempts}:{step}:{phase}{preview}"


def entries_for(job: JobRecord, before: JobStatus) -> list[OutboxEntry]:
    """What this move owes: its webhook event, and the end of a batch's job."""
    record = job.model_dump_json()
    entries = []
    event = wanted_event(job, before)
    if event is not None:
        entries.append(OutboxEntry(id=_event_id(job, event), kind="webhook", job_id=job.id, event=event,
                                   record=record))  # fmt: skip
    if job.batch_id is not None and job.status.terminal and not before.terminal:
        entries.append(OutboxEntry(id=f"{job.id}:batch", kind="batch", job_id=job.id, record=record))
    return entries
