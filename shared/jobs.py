"""A job's lifecycle: its states, the allowed moves between them, and the stored record.

All state changes go through `JobRecord.apply`, so a redelivered task can never complete a job
twice or move a finished job backwards.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from shared.errors import InvalidTransition
from shared.schemas import JobError, Progress, Timings, VideoResult


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"
    """Not started before its start deadline."""

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED, JobState.EXPIRED})

# RUNNING -> RUNNING is a redelivery: the worker that held the job died and another takes it over.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELED, JobState.EXPIRED}),
    JobState.RUNNING: frozenset({JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELED: frozenset(),
    JobState.EXPIRED: frozenset(),
}


def now() -> datetime:
    return datetime.now(UTC)


class JobRecord(BaseModel):
    """The job as stored in Redis: the API's source of truth."""

    id: str
    owner: str
    """Fingerprint of the API key that submitted it (never the key itself)."""
    status: JobState = JobState.QUEUED
    request: dict[str, object]
    gpu_type: str
    region: str
    queue: str
    batch_id: str | None = None
    worker: str | None = None
    attempts: int = 0
    progress: Progress | None = None
    created_at: datetime = Field(default_factory=now)
    start_deadline_at: datetime | None = None
    """A job not started by then ends `expired`."""
    timeout_s: float | None = None
    """Execution deadline per attempt: a job running longer ends `failed` with code `timeout`."""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    timings: Timings = Field(default_factory=Timings)
    result: VideoResult | None = None
    error: JobError | None = None

    def move(self, to: JobState) -> None:
        if to not in TRANSITIONS[self.status]:
            raise InvalidTransition(f"job {self.id}: cannot move from {self.status} to {to}")
        self.status = to
        if to.terminal:
            self.finished_at = now()
