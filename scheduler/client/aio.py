"""`AsyncReelForge`, the asyncio client: the calls of `ReelForge`, awaited, for programs that run many
jobs from one event loop (a web backend, a pipeline fanning out prompts)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
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
    ReelForgeError,
    batch_call,
    batches_listing,
    body_of,
    connection,
    events_path,
    jobs_listing,
    submit_call,
    video_url,
)
from shared.schemas import JobView


class AsyncReelForge:
    """A client of one ReelForge API with one API key. Use it with `async with`, or await `close`."""

    def __init__(
        self,
        api_base: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.http = httpx.AsyncClient(**connection(api_base, api_key, timeout_s), transport=transport)
        self.backoff = Backoff(max_retries, backoff_s, max_backoff_s)
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def __aenter__(self) -> AsyncReelForge:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def submit(
        self,
        request: dict[str, Any] | None = None,
        *,
        wait_s: float | None = None,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> JobView:
        """As `ReelForge.submit`: one job, with an `Idempotency-Key` kept across retries."""
        call = submit_call(request, fields, wait_s, idempotency_key, self.http.timeout.read)
        return JobView.model_validate(await self._call(call))

    async def get(self, job_id: str) -> JobView:
        return JobView.model_validate(await self._call(Call("GET", f"/v1/jobs/{job_id}")))

    async def cancel(self, job_id: str) -> JobView:
        return JobView.model_validate(await self._call(Call("POST", f"/v1/jobs/{job_id}/cancel")))

    async def list(
        self, status: str | None = None, limit: int | None = None, page_size: int = 50
    ) -> AsyncIterator[JobView]:
        """This key's jobs, newest first, fetched page by page (at most `limit`)."""
        async for item in self._pages(jobs_listing(status, page_size), limit):
            yield JobView.model_validate(item)

    async def list_batches(self, limit: int | None = None, page_size: int = 20) -> AsyncIterator[Batch]:
        """This key's batches, newest first, fetched page by page (at most `limit`)."""
        async for item in self._pages(batches_listing(page_size), limit):
            yield item

    async def _pages(self, listing: Listing, limit: int | None) -> AsyncIterator[Any]:
        cursor: str | None = None
        seen = 0
        while True:
            items, cursor = listing.take(await self._call(listing.page(cursor)), seen, limit)
            seen += len(items)
            for item in items:
                yield item
            if cursor is None:
                return

    async def stream(self, job_id: str, last_event_id: str | None = None) -> AsyncGenerator[JobEvent, None]:
        """The job's events until it ends; a dropped connection resumes after the last one received."""
        reader = EventReader(last_event_id)
        while True:
            try:
                async with self.http.stream(
                    "GET", events_path(job_id), headers=reader.headers(), timeout=STREAM_TIMEOUT
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise ReelForgeError.of(response)
                    async for line in response.aiter_lines():
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
                await self.sleep(delay)

    async def wait(self, job_id: str, timeout_s: float = 3600) -> JobView:
        """The job once it has ended, following its event stream."""
        deadline = time.monotonic() + timeout_s
        async with contextlib.aclosing(self.stream(job_id)) as events:  # closed at once, not by the GC
            async for event in events:
                if event.type == "completed" and event.job is not None:
                    return event.job
                if time.monotonic() > deadline:
                    break
        job = await self.get(job_id)
        if job.status not in ENDED:
            raise TimeoutError(f"job {job_id} still {job.status} after {timeout_s:g}s")
        return job

    async def run(
        self, request: dict[str, Any] | None = None, *, output: str | Path | None = None, **fields: Any
    ) -> Path:
        """Submit, wait and download the MP4 (to `output`, default `<job id>.mp4`); JobFailed when the
        job ends without a video."""
        job = await self.wait((await self.submit(request, **fields)).id)
        target = Path(output) if output else Path(f"{job.id}.mp4")
        await self.download(video_url(job), target)
        return target

    async def submit_batch(
        self, requests: Iterable[dict[str, Any]], defaults: dict[str, Any] | None = None
    ) -> Batch:
        result: Batch = await self._call(batch_call(list(requests), defaults))
        return result

    async def get_batch(self, batch_id: str) -> Batch:
        result: Batch = await self._call(Call("GET", f"/v1/batches/{batch_id}"))
        return result

    async def download(self, url: str, path: str | Path) -> int:
        """Write a result link's content to `path`; the bytes written. (Links are signed: no API key.)"""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        async with (
            httpx.AsyncClient(timeout=120, follow_redirects=True) as plain,
            plain.stream("GET", url) as response,
        ):
            response.raise_for_status()
            with open(target, "wb") as f:
                async for chunk in response.aiter_bytes():
                    size += f.write(chunk)
        return size

    async def _call(self, call: Call) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self.http.request(call.method, call.path, **call.options)
            except httpx.TransportError:
                delay = self.backoff.after_error(attempt)
                if delay is None:
                    raise
                await self.sleep(delay)
                continue
            delay = self.backoff.after_answer(attempt, response)
            if delay is None:
                return body_of(response)
            await self.sleep(delay)
