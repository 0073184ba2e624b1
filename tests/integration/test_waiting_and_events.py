"""Waiting for a job in the submission (`Prefer: wait`) and following it as Server-Sent Events, with
`Last-Event-ID` resume and heartbeats, on the real stack."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.integration.support import ROUTE, SMALL_REQUEST, Live, wait_for

pytestmark = pytest.mark.integration

Event = dict[str, Any]


def read_events(client: httpx.Client, job_id: str, last_id: str | None = None) -> tuple[int, list[Event]]:
    """Status code and every frame of the stream (comments as `{"comment": ...}`) until it closes."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    frames: list[Event] = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=120) as response:
        if response.status_code != 200:
            return response.status_code, []
        assert response.headers["content-type"].startswith("text/event-stream")
        frame: Event = {}
        for line in response.iter_lines():
            if not line:
                if frame:
                    frames.append(frame)
                frame = {}
            elif line.startswith(":"):
                frames.append({"comment": line[1:].strip()})
            else:
                name, _, value = line.partition(":")
                frame[name] = json.loads(value) if name == "data" else value.strip()
    return 200, frames


def test_prefer_wait_answers_the_ended_job(api: httpx.Client) -> None:
    response = api.post(ROUTE, json=SMALL_REQUEST, headers={"Prefer": "wait"}, timeout=90)
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded" and job["result"]["video_url"]
    assert response.headers["Preference-Applied"] == "wait=60"  # the test stack's REELFORGE_MAX_WAIT_S


def test_prefer_wait_runs_out_with_202_and_holds_no_thread(live: Live) -> None:
    """Sixty submissions wait at once, more than the API's thread pool (40): `/healthz`, which needs
    a pool thread, still answers at once while they wait."""
    idle = SMALL_REQUEST | {"region": "idle"}

    def waiting(_: int) -> tuple[int, float, dict[str, Any]]:
        with live.client() as c:
            t0 = time.monotonic()
            r = c.post(ROUTE, json=idle, headers={"Prefer": "wait=3"}, timeout=60)
            return r.status_code, time.monotonic() - t0, r.json()

    with ThreadPoolExecutor(60) as pool, live.client() as probe:
        answers = pool.map(waiting, range(60))
        wait_for(lambda: probe.get("/v1/jobs", params={"limit": 60}).json()["jobs"][59:], 20, "60 jobs")
        t0 = time.monotonic()
        assert probe.get("/healthz").status_code == 200
        assert time.monotonic() - t0 < 1.0
        results = list(answers)
    assert {status for status, _, _ in results} == {202}
    assert all(2.5 <= took < 20 for _, took, _ in results), [took for _, took, _ in results]
    assert {job["status"] for _, _, job in results} == {"queued"}


def test_events_stream_phases_then_completed_and_resume(api: httpx.Client) -> None:
    job = api.post(ROUTE, json=SMALL_REQUEST).json()
    status, frames = read_events(api, job["id"])
    assert status == 200
    events = [f for f in frames if "event" in f]
    assert events[0]["event"] == "status"
    assert events[-1]["event"] == "completed" and events[-1]["data"]["status"] == "succeeded"
    assert events[-1]["data"]["result"]["video_url"]
    progress = [e["data"]["progress"] for e in events if e["event"] == "progress"]
    phases = list(dict.fromkeys(p["phase"] for p in progress))
    assert [p for p in phases if p != "loading"] == ["denoising", "decoding", "encoding", "uploading"]
    steps = [p["step"] for p in progress if p["phase"] == "denoising"]
    assert (
        steps == sorted(steps) and steps[-1] == progress[-1]["total"] >= SMALL_REQUEST["num_inference_steps"]
    )
    ids = [e["id"] for e in events]
    assert len(set(ids)) == len(ids)

    # Resuming after an event gives exactly the events after it; after the last, 204 (stop).
    middle = len(events) // 2
    status, again = read_events(api, job["id"], last_id=events[middle]["id"])
    assert [e["id"] for e in again if "event" in e] == ids[middle + 1 :]
    assert read_events(api, job["id"], last_id=ids[-1])[0] == 204
    bad = api.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "Last-Event-ID"


def test_idle_stream_heartbeats_until_cancel(live: Live, api: httpx.Client) -> None:
    job = api.post(ROUTE, json=SMALL_REQUEST | {"region": "idle"}).json()
    seen: list[str] = []
    canceled = False
    with (
        live.client() as reader,
        reader.stream("GET", f"/v1/jobs/{job['id']}/events", timeout=60) as response,
    ):
        for line in response.iter_lines():
            seen.append(line)
            if seen.count(": heartbeat") == 2 and not canceled:
                assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
                seen.append("canceled")
                canceled = True
    assert "event: status" in seen and "event: completed" in seen
    assert seen.index(": heartbeat") < seen.index("canceled") < seen.index("event: completed")
    completed = json.loads(seen[seen.index("event: completed") + 1].removeprefix("data: "))
    assert completed["status"] == "canceled"


def test_events_of_another_key_or_unknown_job_are_404(live: Live, api: httpx.Client) -> None:
    job = api.post(ROUTE, json=SMALL_REQUEST | {"region": "idle"}).json()
    with live.client("test-key-b") as other:
        assert other.get(f"/v1/jobs/{job['id']}/events").status_code == 404
    assert api.get("/v1/jobs/no-such-job/events").status_code == 404
