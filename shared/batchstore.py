"""Batches in Redis, and the manifest a batch gets when its last job ends.

A batch is a hash (owner, size, timestamps, manifest key), the list of its job ids in submission
order, with each job's line number, and the set of its jobs that have ended (keys in `shared.keys`).
The set is filled by a JobStore listener in whichever process ends a job (the API, a GPU worker); the
change that fills it writes the manifest, once, under a SET NX claim. Readers that find every job
ended and no manifest (a process died between the job's commit and its listener) write it themselves
through the same claim.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from pydantic import BaseModel

from shared import keys
from shared.jobs import JobRecord, now
from shared.jobstore import JobStore, read_jobs
from shared.paging import newest_first
from shared.storage import Storage

log = logging.getLogger(__name__)

MANIFEST_CONTENT_TYPE = "application/x-ndjson"
CLAIM_TTL_S = 120
"""A writer that dies mid-write holds the manifest claim this long; then a reader takes it over."""


def manifest_key(batch_id: str) -> str:
    return f"batches/{batch_id}/manifest.jsonl"


class BatchRecord(BaseModel):
    id: str
    owner: str
    size: int
    """How many jobs the batch has."""
    created_at: datetime
    job_ids: list[str] = []
    lines: list[int] = []
    """Each job's line in the submission (1-based), parallel to `job_ids`."""
    canceled_at: datetime | None = None
    manifest_key: str | None = None
    completed_at: datetime | None = None
    """When the manifest was written."""
    video_urls_expire_at: datetime | None = None
    """When the first video link inside the manifest expires."""


class ManifestLine(BaseModel):
    """One line of `batches/<id>/manifest.jsonl`, in submission order."""

    line: int
    job_id: str
    status: str
    storage_key: str | None = None
    """The video's key in the bucket: permanent, unlike `video_url`."""
    video_url: str | None = None
    video_url_expires_at: datetime | None = None
    """Video links in a manifest expire like every link; `GET /v1/jobs/{id}` signs a fresh one."""
    error: dict[str, str] | None = None


class BatchStore:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.r = client
        self.ttl_s = ttl_s

    @classmethod
    def of(cls, jobs: JobStore) -> BatchStore:
        return cls(jobs.r, jobs.ttl_s)

    def create(self, batch_id: str, owner: str, job_ids: list[str], lines: list[int]) -> datetime:
        """Record the batch and its jobs, in one transaction, before any of them is enqueued; when."""
        key, jobs, numbers = keys.batch(batch_id), keys.batch_jobs(batch_id), keys.batch_lines(batch_id)
        created = now()
        fields: dict[Any, Any] = {"owner": owner, "size": len(job_ids), "created_at": created.isoformat()}
        with self.r.pipeline() as p:
            p.hset(key, mapping=fields)
            p.rpush(jobs, *job_ids)
            p.rpush(numbers, *lines)
            for k in (key, jobs, numbers):
                p.expire(k, self.ttl_s)
            p.execute()
        return created

    def list_for(self, owner: str, limit: int, before: float | None) -> list[BatchRecord]:
        """The owner's batches, newest first, created strictly before `before` (a timestamp cursor)."""
        return newest_first(
            self.r, keys.owner_batches(owner), lambda ids: [self.get(i) for i in ids], limit, before
        )

    def truncate(self, batch_id: str, size: int) -> None:
        """Keep only the first `size` jobs (the rest were never created)."""
        key, jobs, numbers = keys.batch(batch_id), keys.batch_jobs(batch_id), keys.batch_lines(batch_id)
        if size == 0:  # ltrim(0, -1) would keep everything
            self.r.delete(key, jobs, numbers)
            return
        with self.r.pipeline() as p:
            p.hset(key, "size", size)
            p.ltrim(jobs, 0, size - 1)
            p.ltrim(numbers, 0, size - 1)
            p.execute()

    def size(self, batch_id: str) -> int:
        """The batch's size; 0 when it does not exist."""
        return int(self.r.hget(keys.batch(batch_id), "size") or 0)

    def get(self, batch_id: str) -> BatchRecord | None:
        with self.r.pipeline() as p:
            p.hgetall(keys.batch(batch_id))
            p.lrange(keys.batch_jobs(batch_id), 0, -1)
            p.lrange(keys.batch_lines(batch_id), 0, -1)
            fields, job_ids, lines = p.execute()
        if not fields:
            return None
        return BatchRecord(
            id=batch_id,
            owner=fields["owner"],
            size=int(fields["size"]),
            created_at=fields["created_at"],
            job_ids=job_ids,
            lines=[int(n) for n in lines],
            canceled_at=fields.get("canceled_at"),
            manifest_key=fields.get("manifest_key"),
            completed_at=fields.get("completed_at"),
            video_urls_expire_at=fields.get("video_urls_expire_at"),
        )

    def jobs(self, batch: BatchRecord) -> list[JobRecord | None]:
        """The batch's job records in submission order (None for one that has expired)."""
        return read_jobs(self.r, batch.job_ids)

    def mark_queued(self, batch_id: str, owner: str, created: datetime) -> None:
        """Every job of the batch was accepted: a replay of its `Idempotency-Key` may return it, and
        it is listed (a half-made batch would show its jobs not yet created as ended)."""
        queued = now()
        index = keys.owner_batches(owner)
        with self.r.pipeline() as p:
            p.hset(keys.batch(batch_id), "queued_at", queued.isoformat())
            p.zadd(index, {batch_id: created.timestamp()})
            # Batches past their TTL leave the index here, so it stays as small as they are.
            p.zremrangebyscore(index, "-inf", queued.timestamp() - self.ttl_s)
            p.expire(index, self.ttl_s)
            p.execute()

    def queued(self, batch_id: str) -> bool:
        return bool(self.r.hexists(keys.batch(batch_id), "queued_at"))

    def mark_canceled(self, batch_id: str) -> None:
        self.r.hsetnx(keys.batch(batch_id), "canceled_at", now().isoformat())

    def mark_ended(self, batch_id: str, job_id: str) -> int:
        """Record that a job of the batch ended; idempotent. Returns how many have ended."""
        key = keys.batch_ended(batch_id)
        with self.r.pipeline() as p:
            p.sadd(key, job_id)
            p.expire(key, self.ttl_s)
            p.scard(key)
            return int(p.execute()[2])

    def claim_manifest(self, batch_id: str) -> bool:
        return bool(self.r.set(keys.batch_manifest_claim(batch_id), "1", nx=True, ex=CLAIM_TTL_S))

    def release_manifest(self, batch_id: str) -> None:
        self.r.delete(keys.batch_manifest_claim(batch_id))

    def set_manifest(self, batch_id: str, key: str, video_urls_expire_at: datetime | None) -> None:
        fields: dict[Any, Any] = {"manifest_key": key, "completed_at": now().isoformat()}
        if video_urls_expire_at is not None:
            fields["video_urls_expire_at"] = video_urls_expire_at.isoformat()
        self.r.hset(keys.batch(batch_id), mapping=fields)


class BatchTracker:
    """Marks batch jobs ended and writes each batch's manifest once (the relay calls it for every
    batch job's end, from the outbox; a read of the batch repairs what a crash left)."""

    def __init__(self, client: redis.Redis, ttl_s: int, storage: Storage) -> None:
        self.batches = BatchStore(client, ttl_s)
        self.storage = storage

    def job_ended(self, job: JobRecord) -> None:
        """Record the end of one of a batch's jobs; the last one writes the manifest. Idempotent."""
        if job.batch_id is None:
            return
        ended = self.batches.mark_ended(job.batch_id, job.id)
        if ended < self.batches.size(job.batch_id):
            return
        batch = self.batches.get(job.batch_id)
        if batch is not None:
            self.finish_if_complete(batch)

    def finish_if_complete(
        self, batch: BatchRecord, records: list[JobRecord | None] | None = None
    ) -> BatchRecord:
        """Write the manifest when every job of the batch has ended and nobody has yet; the batch
        as it stands afterwards."""
        if batch.manifest_key is not None or len(batch.job_ids) < batch.size:
            return batch
        records = records if records is not None else self.batches.jobs(batch)
        if not all(r is None or r.status.terminal for r in records):
            return batch
        if not self.batches.claim_manifest(batch.id):
            return batch  # another process is writing it
        try:
            current = self.batches.get(batch.id)
            if current is None or current.manifest_key is not None:
                return current or batch
            key = manifest_key(batch.id)
            lines = self.manifest_lines(batch, records)
            self._write(key, lines)
            expiries = [e.video_url_expires_at for e in lines if e.video_url_expires_at is not None]
            self.batches.set_manifest(batch.id, key, min(expiries, default=None))
            log.info("batch %s complete: manifest %s", batch.id, key)
        except Exception:
            self.batches.release_manifest(batch.id)
            raise
        return self.batches.get(batch.id) or batch

    def manifest_lines(self, batch: BatchRecord, records: Iterable[JobRecord | None]) -> list[ManifestLine]:
        lines = []
        for line, job_id, job in zip(batch.lines, batch.job_ids, records, strict=True):
            if job is None:
                lines.append(
                    ManifestLine(
                        line=line,
                        job_id=job_id,
                        status="unknown",
                        error={"code": "not_found", "message": "job record expired"},
                    )
                )
                continue
            entry = ManifestLine(line=line, job_id=job_id, status=job.status.value)
            if job.result is not None:
                entry.storage_key = job.result.storage_key
                entry.video_url, entry.video_url_expires_at = self.storage.url(job.result.storage_key)
            if job.error is not None:
                entry.error = job.error.model_dump()
            lines.append(entry)
        return lines

    def _write(self, key: str, lines: list[ManifestLine]) -> None:
        with tempfile.TemporaryDirectory(prefix="rf-manifest-") as tmp:
            path = Path(tmp) / "manifest.jsonl"
            with path.open("w") as f:
                for entry in lines:
                    f.write(_dumps(entry.model_dump(mode="json")) + "\n")
            self.storage.put_file(key, path, MANIFEST_CONTENT_TYPE)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
