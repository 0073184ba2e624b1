"""A job's committed changes as the API streams and waits on them, read from the job's Redis stream.

`JobStore.update` appends the record to `keys.job_events(id)` in the same transaction as the move, so
an entry id names one committed state: it is the SSE event id, and `Last-Event-ID` resumes after it.
Waiting is an `XREAD BLOCK` on the event loop's async Redis client: a thousand waiting clients hold a
thousand idle connections, not a thousand threads, and nothing polls the record in a loop.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis

from shared import keys
from shared.errors import InvalidInput
from shared.jobs import JobRecord

START = "0-0"
"""Before every entry: reading after it returns the whole stream."""
ENTRY_ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")

Entry = tuple[str, JobRecord]


class EventKind(StrEnum):
    """The SSE event types of `GET /v1/jobs/{id}/events`."""

    STATUS = "status"
    """The job as `GET /v1/jobs/{id}` shows it: first on connect, then on each status change."""
    PROGRESS = "progress"
    """`{id, status, progress}`: a new phase or denoising iteration."""
    COMPLETED = "completed"
    """The job, ended (succeeded, failed, canceled or expired); the stream ends after it."""


def event_kind(before: JobRecord | None, after: JobRecord) -> EventKind | None:
    """What a change is to a client that saw `before` (None: nothing yet); None for a change that
    shows neither in status nor progress (a webhook delivery recorded, say)."""
    if after.status.terminal:
        return EventKind.COMPLETED
    if before is None or before.status != after.status:
        return EventKind.STATUS
    if before.progress != after.progress:
        return EventKind.PROGRESS
    return None


def parse_entry_id(value: str, field: str = "Last-Event-ID") -> str:
    """A stream entry id as a client sent it back, or a 422 naming the header."""
    if not ENTRY_ID.match(value.strip()):
        raise InvalidInput(
            f"{field}: must be the id of an event this stream sent, got {value!r}", field=field
        )
    return value.strip()


class JobFeed:
    """Reads jobs' event streams with an async Redis client (one per API process)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.r = client

    @classmethod
    def from_url(cls, url: str) -> JobFeed:
        return cls(aioredis.Redis.from_url(url, decode_responses=True))

    async def latest(self, job_id: str) -> Entry | None:
        """The last committed state on the stream; None before the job's first move."""
        found: Any = await self.r.xrevrange(keys.job_events(job_id), count=1)
        return _entries(found)[0] if found else None

    async def after(self, job_id: str, last_id: str, block_s: float | None) -> list[Entry]:
        """Entries after `last_id`, waiting up to `block_s` for one (None: do not wait)."""
        block = None if block_s is None else max(1, round(block_s * 1000))
        found: Any = await self.r.xread({keys.job_events(job_id): last_id}, count=100, block=block)
        return _entries(found[0][1]) if found else []

    async def follow(self, job_id: str, last_id: str, idle_s: float) -> AsyncIterator[Entry | None]:
        """Every entry after `last_id`, as it is committed; None after each `idle_s` without one."""
        while True:
            entries = await self.after(job_id, last_id, idle_s)
            if not entries:
                yield None
            for entry in entries:
                last_id = entry[0]
                yield entry

    async def wait_ended(self, job_id: str, current: JobRecord, timeout_s: float) -> JobRecord:
        """The job once it has ended, or as it is when `timeout_s` runs out."""
        latest = await self.latest(job_id)
        last_id, job = latest if latest else (START, current)
        deadline = time.monotonic() + timeout_s
        while not job.status.terminal:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            entries = await self.after(job_id, last_id, left)
            if entries:
                last_id, job = entries[-1]
        return job

    async def close(self) -> None:
        await self.r.aclose()


def _entries(raw: Any) -> list[Entry]:
    return [(entry_id, JobRecord.model_validate_json(fields["job"])) for entry_id, fields in raw]
