"""Canceling queued and running jobs, and the start and execution deadlines, on the real stack."""

from __future__ import annotations

import httpx
import pytest

from shared.fleet import TaskOutcome
from tests.integration.support import ROUTE, SLOW_REQUEST, SMALL_REQUEST, Live, task_seen, wait_for, wait_job

pytestmark = pytest.mark.integration

ELASTIC = SMALL_REQUEST | {"region": "elastic"}
SLOW = SLOW_REQUEST | {"region": "elastic"}


def test_cancel_queued_job_never_starts(live: Live, api: httpx.Client) -> None:
    job = api.post(ROUTE, json=SMALL_REQUEST | {"region": "idle"}).json()
    assert api.get(f"/v1/jobs/{job['id']}").json()["queue_position"] == 1
    canceled = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    again = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_finished"
    assert "already canceled" in again.json()["error"]["message"]
    live.stack.start_worker("w-idle", {"REELFORGE_WORKER_REGION": "idle"})
    try:
        # The worker takes the task and drops it.
        seen = wait_for(lambda: task_seen(live, "w-idle@reelforge", job["id"]), 60, "w-idle to take the task")
        assert seen.outcome == TaskOutcome.DROPPED
        after = api.get(f"/v1/jobs/{job['id']}").json()
        assert (after["status"], after["started_at"], after["attempts"]) == ("canceled", None, 0)
    finally:
        live.stack.kill("w-idle")


def test_cancel_running_job_stops_and_worker_keeps_serving(live: Live, api: httpx.Client) -> None:
    job = api.post(ROUTE, json=SLOW).json()
    wait_for(
        lambda: (api.get(f"/v1/jobs/{job['id']}").json().get("progress") or {}).get("step", 0) >= 2,
        60,
        "steps",
    )
    assert api.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "canceled"
    canceled = api.get(f"/v1/jobs/{job['id']}").json()
    # The worker sees the cancel at its next step and stops the job there.
    seen = wait_for(lambda: task_seen(live, canceled["worker"], job["id"]), 30, "the worker to stop the job")
    assert seen.outcome == TaskOutcome.STOPPED
    later = api.get(f"/v1/jobs/{job['id']}").json()
    assert later["status"] == "canceled" and later["result"] is None
    assert later["progress"]["step"] <= canceled["progress"]["step"] + 1 < later["progress"]["total"]
    nxt = wait_job(api, api.post(ROUTE, json=ELASTIC).json()["id"], timeout_s=60)
    assert nxt["status"] == "succeeded" and nxt["worker"] == canceled["worker"]


def test_start_deadline_expires_queued_job(api: httpx.Client) -> None:
    job = api.post(ROUTE, json=SMALL_REQUEST | {"region": "idle", "start_deadline_s": 1}).json()
    done = wait_job(api, job["id"], timeout_s=15)
    assert done["status"] == "expired" and done["error"]["code"] == "expired"
    assert done["started_at"] is None


def test_execution_deadline_fails_with_timeout(api: httpx.Client) -> None:
    job = api.post(ROUTE, json=SLOW | {"timeout_s": 1}).json()
    done = wait_job(api, job["id"], timeout_s=90)
    assert done["status"] == "failed" and done["error"]["code"] == "timeout", done
    assert "execution deadline of 1s" in done["error"]["message"]
