"""The Python client of the ReelForge API: `from scheduler.client import ReelForge`.

    from scheduler.client import ReelForge

    rf = ReelForge()  # REELFORGE_API_BASE and REELFORGE_API_KEY, or pass api_base= and api_key=
    video = rf.run({"prompt": "a lighthouse at dusk", "model_version": "tiny-random",
                    "width": 128, "height": 80, "num_frames": 37}, output="lighthouse.mp4")

It is light (httpx and pydantic, nothing of the API's server side), runs in your program, and retries
what is safe to retry: 429 and 503 (after their `Retry-After`) and connection errors, with exponential
backoff and jitter. Every submission carries an `Idempotency-Key` (one per call, the same on each retry
of it), so a retried submission never creates a second job.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from shared.catalog import MODEL_SLUG
from shared.schemas import JobPage, JobView, Progress

DEFAULT_API_BASE = "http://127.0.0.1:8000"
DEFAULT_API_KEY = "rf-dev-key"
"""The embedded stack's key (`reelforge dev`); anything else needs REELFORGE_API_KEY."""
RETRY_STATUSES = frozenset({429, 503})
Batch = dict[str, Any]
"""`GET /v1/batches/{id}` as JSON (see the API's OpenAPI, `BatchView`)."""
ManifestLines = list[dict[str, Any]]
"""A batch manifest's lines: `{line, job_id, status, storage_key, video_url, error, ...}`."""


class ReelForgeError(RuntimeError):
    """An error answer of the API, as one line: `<code>: <message>` (the HTTP status in `status`)."""

    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.body = body
        self.code: str = error.get("code") or f"http_{status}"
        self.message: str = error.get("message") or (str(body) if body else f"HTTP {status}")
        super().__init__(f"{self.code}: {self.message}")


class JobFailed(RuntimeError):
    """`run` found the job ended without a video (failed, canceled or expired)."""

    def __init__(self, job: JobView) -> None:
        self.job = job
        detail = f"{job.error.code}: {job.error.message}" if job.error else job.status
        super().__init__(f"job {job.id} {job.status}: {detail}")


@dataclass
class JobEvent:
    """One Server-Sent Event of `GET /v1/jobs/{id}/events`."""

    type: str
    """`status`, `progress` or `completed`."""
    id: str
    """Its place in the job's stream (what `Last-Event-ID` resumes after)."""
    job_id: str
    status: str
    job: JobView | None = None
    """The whole job, on `status` and `completed`."""
    progress: Progress | None = None


class ReelForge:
    """A client of one ReelForge API with one API key. Use it as a context manager, or call `close`."""

    def __init__(
        self,
        api_base: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base = api_base or os.environ.get("REELFORGE_API_BASE") or DEFAULT_API_BASE
        key = api_key or os.environ.get("REELFORGE_API_KEY") or DEFAULT_API_KEY
        self.http = httpx.Client(
            base_url=base.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout_s,
            transport=transport,
        )
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.sleep: Callable[[float], None] = time.sleep

    def __enter__(self) -> ReelForge:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # Jobs.

    def submit(
        self,
        request: dict[str, Any] | None = None,
        *,
        wait_s: float | None = None,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> JobView:
        """Submit one job (the catalog's payload; `fields` override `request`'s). With `wait_s`, the API
        holds the answer until the job ends or that many seconds pass (`Prefer: wait=N`)."""
        headers = {"Idempotency-Key": idempotency_key or f"rf-client-{uuid.uuid4()}"}
        if wait_s is not None:
            headers["Prefer"] = f"wait={wait_s:g}"
        body = {**(request or {}), **fields}
        timeout = None if wait_s is None else wait_s + self.http.timeout.read  # type: ignore[operator]
        return JobView.model_validate(
            self._call("POST", f"/v1/inference/{MODEL_SLUG}", json=body, headers=headers, timeout=timeout)
        )

    def get(self, job_id: str) -> JobView:
        return JobView.model_validate(self._call("GET", f"/v1/jobs/{job_id}"))

    def cancel(self, job_id: str) -> JobView:
        """Cancel a job; a job that already ended answers `already_finished` (ReelForgeError, 409)."""
        return JobView.model_validate(self._call("POST", f"/v1/jobs/{job_id}/cancel"))

    def list(
        self, status: str | None = None, limit: int | None = None, page_size: int = 50
    ) -> Iterator[JobView]:
        """This key's jobs, newest first, fetched page by page (at most `limit`)."""
        cursor, seen = None, 0
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if status:
                params["status"] = status
            if cursor:
                params["cursor"] = cursor
            page = JobPage.model_validate(self._call("GET", "/v1/jobs", params=params))
            for job in page.jobs:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield job
            cursor = page.next_cursor
            if not cursor:
                return

    def stream(self, job_id: str, last_event_id: str | None = None) -> Iterator[JobEvent]:
        """The job's events until it ends (`completed` is the last); a dropped connection is resumed
        after the last event received, with the same backoff as other calls."""
        failures = 0
        while True:
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            try:
                with self.http.stream(
                    "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=httpx.Timeout(30, read=None)
                ) as response:
                    if response.status_code == 204:
                        return
                    if response.status_code >= 400:
                        response.read()
                        raise _error(response)
                    for event in _parse_sse(response.iter_lines()):
                        failures = 0
                        last_event_id = event.id
                        yield event
                        if event.type == "completed":
                            return
                    return
            except httpx.TransportError:
                failures += 1
                if failures > self.max_retries:
                    raise
                self.sleep(self._backoff(failures, None))

    def wait(
        self, job_id: str, timeout_s: float = 3600, on_event: Callable[[JobEvent], None] | None = None
    ) -> JobView:
        """The job once it has ended, following its event stream (`on_event` sees every event)."""
        deadline = time.monotonic() + timeout_s
        for event in self.stream(job_id):
            if on_event is not None:
                on_event(event)
            if event.type == "completed" and event.job is not None:
                return event.job
            if time.monotonic() > deadline:
                break
        job = self.get(job_id)
        if job.status not in ("succeeded", "failed", "canceled", "expired"):
            raise TimeoutError(f"job {job_id} still {job.status} after {timeout_s:g}s")
        return job

    def run(
        self, request: dict[str, Any] | None = None, *, output: str | Path | None = None, **fields: Any
    ) -> Path:
        """Submit, wait for the end and download the MP4 (to `output`, default `<job id>.mp4`): like
        `replicate.run`. Raises JobFailed when the job ends without a video."""
        job = self.wait(self.submit(request, **fields).id)
        if job.status != "succeeded" or job.result is None or not job.result.video_url:
            raise JobFailed(job)
        target = Path(output) if output else Path(f"{job.id}.mp4")
        self.download(job.result.video_url, target)
        return target

    # Batches.

    def submit_batch(
        self, requests: Iterable[dict[str, Any]], defaults: dict[str, Any] | None = None
    ) -> Batch:
        """Many requests at once: all validated before any job is created."""
        body = {"defaults": defaults or {}, "requests": list(requests)}
        result: Batch = self._call("POST", "/v1/batches", json=body)
        return result

    def submit_batch_jsonl(self, jsonl: str | bytes, defaults: dict[str, Any] | None = None) -> Batch:
        """A batch from a JSONL document, one request per line."""
        params = {"defaults": json.dumps(defaults)} if defaults else None
        headers = {"Content-Type": "application/x-ndjson"}
        result: Batch = self._call("POST", "/v1/batches", content=jsonl, params=params, headers=headers)
        return result

    def get_batch(self, batch_id: str) -> Batch:
        result: Batch = self._call("GET", f"/v1/batches/{batch_id}")
        return result

    def cancel_batch(self, batch_id: str) -> Batch:
        result: Batch = self._call("POST", f"/v1/batches/{batch_id}/cancel")
        return result

    def wait_batch(
        self,
        batch_id: str,
        on_update: Callable[[Batch], None] | None = None,
        poll_s: float = 1.0,
        timeout_s: float = 24 * 3600,
    ) -> Batch:
        """The batch once every job ended and its manifest is written (polled: a batch has no stream)."""
        deadline = time.monotonic() + timeout_s
        while True:
            batch = self.get_batch(batch_id)
            if on_update is not None:
                on_update(batch)
            if batch["status"] == "completed":
                return batch
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch_id} still {batch['status']} after {timeout_s:g}s")
            self.sleep(poll_s)

    def run_batch(
        self, requests: Iterable[dict[str, Any]], defaults: dict[str, Any] | None = None
    ) -> ManifestLines:
        """Submit a batch, wait for it, and return its manifest's lines (one per request, in order)."""
        batch = self.wait_batch(self.submit_batch(requests, defaults)["id"])
        manifest = httpx.get(batch["manifest"]["url"], timeout=120, follow_redirects=True)
        manifest.raise_for_status()
        return [json.loads(line) for line in manifest.text.splitlines() if line.strip()]

    # Files.

    def download(self, url: str, path: str | Path) -> int:
        """Write a result link's content to `path`; the bytes written. (Links are signed: no API key.)"""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        with httpx.stream("GET", url, timeout=120, follow_redirects=True) as response:
            response.raise_for_status()
            with open(target, "wb") as f:
                for chunk in response.iter_bytes():
                    size += f.write(chunk)
        return size

    # Retries.

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError:
                if attempt > self.max_retries:
                    raise
                self.sleep(self._backoff(attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and attempt <= self.max_retries:
                self.sleep(self._backoff(attempt, response.headers.get("retry-after")))
                continue
            if response.status_code >= 400:
                raise _error(response)
            return response.json() if response.content else None

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        """`Retry-After` when the server says it; else doubling from `backoff_s`, capped, with jitter."""
        if retry_after is not None:
            try:
                return min(float(retry_after), self.max_backoff_s)
            except ValueError:
                pass
        return min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s) * random.uniform(0.5, 1.0)


def _error(response: httpx.Response) -> ReelForgeError:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return ReelForgeError(response.status_code, body)


def _parse_sse(lines: Iterator[str]) -> Iterator[JobEvent]:
    fields: dict[str, str] = {}
    for line in lines:
        if line.startswith(":"):
            continue  # a heartbeat
        if line:
            name, _, value = line.partition(":")
            fields[name] = fields.get(name, "") + value.removeprefix(" ")
            continue
        if "data" in fields:
            data = json.loads(fields["data"])
            kind = fields.get("event", "message")
            job = JobView.model_validate(data) if kind != "progress" else None
            progress = job.progress if job else Progress.model_validate(data["progress"] or {})
            yield JobEvent(kind, fields.get("id", ""), data["id"], data["status"], job, progress)
        fields = {}
