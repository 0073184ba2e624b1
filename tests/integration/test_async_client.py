"""The asyncio client (`scheduler.client.AsyncReelForge`) against the real stack: several jobs run from
one event loop, events streamed, cancel and errors, and a retried submission that makes one job."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import httpx
import pytest

from scheduler.client import AsyncReelForge, JobFailed, ReelForgeError
from tests.integration.support import KEY_A, SMALL_REQUEST, Live

pytestmark = pytest.mark.integration


def test_runs_jobs_concurrently_from_one_loop(live: Live, tmp_path: Path) -> None:
    async def main() -> list[Path]:
        async with AsyncReelForge(live.base, KEY_A) as rf:
            runs = [rf.run(SMALL_REQUEST, seed=s, output=tmp_path / f"{s}.mp4") for s in (1, 2)]
            return await asyncio.gather(*runs)

    paths = asyncio.run(main())
    assert [p.name for p in paths] == ["1.mp4", "2.mp4"]
    for path in paths:
        with av.open(str(path)) as container:
            assert container.streams.video[0].width == SMALL_REQUEST["width"]


def test_stream_cancel_list_and_errors(live: Live) -> None:
    async def main() -> None:
        async with AsyncReelForge(live.base, KEY_A) as rf:
            job = await rf.submit(SMALL_REQUEST, region="idle", seed=5)
            assert job.status == "queued" and job.request["seed"] == 5
            assert job.id in [j.id async for j in rf.list(status="queued", limit=10)]
            events = rf.stream(job.id)
            first = await anext(events)
            assert (first.type, first.status) == ("status", "queued")
            assert (await rf.cancel(job.id)).status == "canceled"
            rest = [e async for e in events]
            assert rest[-1].type == "completed" and rest[-1].status == "canceled"
            assert (await rf.wait(job.id)).status == "canceled"
            with pytest.raises(ReelForgeError) as again:
                await rf.cancel(job.id)
            assert again.value.status == 409 and again.value.code == "already_finished"
            with pytest.raises(ReelForgeError) as bad:
                await rf.submit(SMALL_REQUEST, width=40)
            assert bad.value.code == "invalid_input" and "multiple of 16" in bad.value.message
            with pytest.raises(JobFailed, match="expired"):
                await rf.run(SMALL_REQUEST, start_deadline_s=0.001, region="idle")
            batch = await rf.submit_batch(
                [{"prompt": "a batch"}], defaults=SMALL_REQUEST | {"region": "idle"}
            )
            assert [b["id"] async for b in rf.list_batches(limit=5)] == [batch["id"]]

    asyncio.run(main())


class LostAnswers(httpx.AsyncBaseTransport):
    """Sends each POST to the server, then loses its answer the first `times` times."""

    def __init__(self, times: int) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.times = times
        self.keys: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST":
            self.keys.append(request.headers.get("idempotency-key"))
            if self.times > 0:
                self.times -= 1
                await response.aread()
                raise httpx.ReadError("connection reset after the request was sent", request=request)
        return response


def test_retried_submission_creates_one_job(live: Live, api: httpx.Client) -> None:
    transport = LostAnswers(times=2)
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> str:
        async with AsyncReelForge(live.base, KEY_A, transport=transport) as rf:
            rf.sleep = no_wait
            return (await rf.submit(SMALL_REQUEST, region="idle")).id

    job_id = asyncio.run(main())
    assert len(waits) == 2
    assert len(transport.keys) == 3 and len(set(transport.keys)) == 1 and transport.keys[0]
    assert [j["id"] for j in api.get("/v1/jobs").json()["jobs"]] == [job_id]
