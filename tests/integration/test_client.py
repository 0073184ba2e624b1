"""The Python client (`scheduler.client.ReelForge`) against the real stack: run, submit/get/stream/
wait/cancel/list, batches, and retries that never create a second job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from scheduler.client import JobFailed, ReelForge, ReelForgeError
from tests.integration.support import KEY_A, SMALL_REQUEST, Live, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def rf(live: Live) -> Any:
    with ReelForge(live.base, KEY_A) as client:
        client.sleep = lambda _: None  # retries in these tests need no real backoff
        yield client


def test_run_is_submit_wait_download(rf: ReelForge, tmp_path: Path) -> None:
    path = rf.run(SMALL_REQUEST, output=tmp_path / "v.mp4")
    with av.open(str(path)) as container:
        assert container.streams.video[0].width == SMALL_REQUEST["width"]


def test_submit_stream_list_cancel_and_errors(rf: ReelForge) -> None:
    job = rf.submit(SMALL_REQUEST, region="idle", seed=5)
    assert job.status == "queued" and job.request["seed"] == 5
    assert job.id in [j.id for j in rf.list(status="queued", limit=10)]
    events = rf.stream(job.id)
    first = next(events)
    assert (first.type, first.status, first.job and first.job.queue_position) == ("status", "queued", 1)
    assert rf.cancel(job.id).status == "canceled"
    rest = list(events)
    assert rest[-1].type == "completed" and rest[-1].status == "canceled"
    assert rf.wait(job.id).status == "canceled"
    with pytest.raises(ReelForgeError) as again:
        rf.cancel(job.id)
    assert again.value.status == 409 and str(again.value).startswith("already_finished: ")
    with pytest.raises(ReelForgeError) as bad:
        rf.submit(SMALL_REQUEST, width=40)
    assert bad.value.code == "invalid_input" and "multiple of 16" in bad.value.message


def test_run_raises_when_the_job_ends_without_a_video(rf: ReelForge) -> None:
    with pytest.raises(JobFailed, match="expired"):
        rf.run(SMALL_REQUEST, start_deadline_s=0.001, region="idle")


def test_submit_with_wait_returns_the_ended_job(rf: ReelForge) -> None:
    job = rf.submit(SMALL_REQUEST, wait_s=60)
    assert job.status == "succeeded" and job.result is not None and job.result.video_url


class LostAnswers(httpx.BaseTransport):
    """Sends each POST to the server, then loses its answer the first `times` times: the client sees a
    connection error for a submission the server accepted."""

    def __init__(self, times: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.times = times
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST":
            self.keys.append(request.headers.get("idempotency-key"))
            if self.times > 0:
                self.times -= 1
                response.read()
                raise httpx.ReadError("connection reset after the request was sent", request=request)
        return response


class Throttled(httpx.BaseTransport):
    """Answers 429 (then 503) before letting a request through."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.answers = [429, 503]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.answers:
            status = self.answers.pop(0)
            body = {"error": {"code": "rate_limited" if status == 429 else "unavailable", "message": "later"}}
            return httpx.Response(status, json=body, headers={"Retry-After": "1"})
        return self.inner.handle_request(request)


def test_retried_submission_creates_one_job(live: Live, api: httpx.Client) -> None:
    transport = LostAnswers(times=2)
    with ReelForge(live.base, KEY_A, transport=transport) as rf:
        rf.sleep = lambda _: None
        job = rf.submit(SMALL_REQUEST, region="idle")
    assert len(transport.keys) == 3 and len(set(transport.keys)) == 1 and transport.keys[0]
    ids = [j["id"] for j in api.get("/v1/jobs").json()["jobs"]]
    assert ids == [job.id]


def test_retried_batch_submission_creates_one_batch(live: Live, api: httpx.Client) -> None:
    transport = LostAnswers(times=1)
    idle = {**SMALL_REQUEST, "region": "idle"}
    with ReelForge(live.base, KEY_A, transport=transport) as rf:
        rf.sleep = lambda _: None
        batch = rf.submit_batch([{"prompt": "one"}, {"prompt": "two"}], defaults=idle)
    assert len(transport.keys) == 2 and len(set(transport.keys)) == 1 and transport.keys[0]
    jobs = api.get("/v1/jobs").json()["jobs"]
    assert sorted(j["id"] for j in jobs) == sorted(batch["job_ids"])


def test_429_and_503_are_retried_after_retry_after(live: Live) -> None:
    waits: list[float] = []
    with ReelForge(live.base, KEY_A, transport=Throttled()) as rf:
        rf.sleep = waits.append
        assert rf.list(limit=1) is not None and list(rf.list(limit=1)) == []
    assert waits == [1.0, 1.0]


def test_connection_errors_give_up_after_max_retries(tmp_path: Path) -> None:
    waits: list[float] = []
    with ReelForge("http://127.0.0.1:9", "k", max_retries=3, backoff_s=0.5) as rf:
        rf.sleep = waits.append
        with pytest.raises(httpx.ConnectError):
            rf.get("x")
    assert len(waits) == 3 and waits[0] <= 0.5 and waits[2] <= 2.0 and waits[2] >= 1.0


def test_run_batch_returns_the_manifest(rf: ReelForge) -> None:
    defaults = {k: v for k, v in SMALL_REQUEST.items() if k != "prompt"}
    lines = rf.run_batch([{"prompt": "one"}, {"prompt": "two", "seed": 3}], defaults)
    assert [(line["line"], line["status"]) for line in lines] == [(1, "succeeded"), (2, "succeeded")]
    assert wait_for(lambda: rf.get(lines[1]["job_id"]).request["seed"] == 3, 5, "the job")
