"""`ReelForge`, the blocking client: each call returns when the API has answered."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from scheduler.client.protocol import (
    ENDED,
    STREAM_TIMEOUT,
    Backoff,
    Batch,
    Call,
    EventReader,
    JobEvent,
    Listing,
    ManifestLines,
    ReelForgeError,
    batch_call,
    batch_jsonl_call,
    batches_listing,
    body_of,
    connection,
    events_path,
    jobs_listing,
    manifest_lines,
    submit_call,
    video_url,
)
from shared.schemas import JobView


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
        self.http = httpx.Client(**connection(api_base, api_key, timeout_s), transport=transport)
        self.backoff = Backoff(max_retries, backoff_s, max_backoff_s)
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
        call = submit_call(request, fields, wait_s, idempotency_key, self.http.timeout.read)
        return JobView.model_validate(self._call(call))

    def get(self, job_id: str) -> JobView:
        return JobView.model_validate(self._call(Call("GET", f"/v1/jobs/{job_id}")))

    def cancel(self, job_id: str) -> JobView:
        """Cancel a job; a job that already ended answers `already_finished` (ReelForgeError, 409)."""
        return JobView.model_validate(self._call(Call("POST", f"/v1/jobs/{job_id}/cancel")))

    def list(
        self, status: str | None = None, limit: int | None = None, page_size: int = 50
    ) -> Iterator[JobView]:
        """This key's jobs, newest first, fetched page by page (at most `limit`)."""
        for item in self._pages(jobs_listing(status, page_size), limit):
            yield JobView.model_validate(item)

    def list_batches(self, limit: int | None = None, page_size: int = 20) -> Iterator[Batch]:
        """This key's batches, newest first, fetched page by page (at most `limit`)."""
        return self._pages(batches_listing(page_size), limit)

    def _pages(self, listing: Listing, limit: int | None) -> Iterator[Any]:
        cursor: str | None = None
        seen = 0
        while True:
            items, cursor = listing.take(self._call(listing.page(cursor)), seen, limit)
            seen += len(items)
            yield from items
            if cursor is None:
                return

    def stream(self, job_id: str, last_event_id: str | None = None) -> Iterator[JobEvent]:
        """The job's events until it ends (`completed` is the last); a dropped connection is resumed
        after the last event received, with the same backoff as other calls."""
        reader = EventReader(last_event_id)
        while True:
            try:
                with self.http.stream(
                    "GET", events_path(job_id), headers=reader.headers(), timeout=STREAM_TIMEOUT
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise ReelForgeError.of(response)
                    for line in response.iter_lines():
                        event = reader.feed(line)
                        if event is not None:
                            yield event
                            if event.type == "completed":
                                return
                    return
            except httpx.TransportError:
                delay = reader.dropped(self.backoff)
                if delay is None:
                    raise
                self.sleep(delay)

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
        if job.status not in ENDED:
            raise TimeoutError(f"job {job_id} still {job.status} after {timeout_s:g}s")
        return job

    def run(
        self, request: dict[str, Any] | None = None, *, output: str | Path | None = None, **fields: Any
    ) -> Path:
        """Submit, wait for the end and download the MP4 (to `output`, default `<job id>.mp4`): like
        `replicate.run`. Raises JobFailed when the job ends without a video."""
        job = self.wait(self.submit(request, **fields).id)
        target = Path(output) if output else Path(f"{job.id}.mp4")
        self.download(video_url(job), target)
        return target

    # Batches.

    def submit_batch(
        self, requests: Iterable[dict[str, Any]], defaults: dict[str, Any] | None = None
    ) -> Batch:
        """Many requests at once: all validated before any job is created."""
        result: Batch = self._call(batch_call(list(requests), defaults))
        return result

    def submit_batch_jsonl(self, jsonl: str | bytes, defaults: dict[str, Any] | None = None) -> Batch:
        """A batch from a JSONL document, one request per line."""
        result: Batch = self._call(batch_jsonl_call(jsonl, defaults))
        return result

    def get_batch(self, batch_id: str) -> Batch:
        result: Batch = self._call(Call("GET", f"/v1/batches/{batch_id}"))
        return result

    def cancel_batch(self, batch_id: str) -> Batch:
        result: Batch = self._call(Call("POST", f"/v1/batches/{batch_id}/cancel"))
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
        return manifest_lines(manifest.text)

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

    def _call(self, call: Call) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.http.request(call.method, call.path, **call.options)
            except httpx.TransportError:
                delay = self.backoff.after_error(attempt)
                if delay is None:
                    raise
                self.sleep(delay)
                continue
            delay = self.backoff.after_answer(attempt, response)
            if delay is None:
                return body_of(response)
            self.sleep(delay)
