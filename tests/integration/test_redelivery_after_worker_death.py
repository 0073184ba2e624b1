"""A worker killed with SIGKILL mid-job: the task is redelivered and the job succeeds exactly once."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from shared import keys
from shared.fleet import TaskOutcome
from tests.integration.support import SLOW_REQUEST, Live, broker_copies, fleet, task_seen, wait_for, wait_job

pytestmark = pytest.mark.integration

SLOW = SLOW_REQUEST | {"region": "redelivery"}
QUEUE = keys.pool_queue("CPU", "redelivery")


def test_killed_worker_job_is_redelivered_and_succeeds_once(live: Live, api: httpx.Client) -> None:
    live.stack.start_worker("w-doomed", {"REELFORGE_WORKER_REGION": "redelivery"})
    job = api.post("/v1/inference/skywork-skyreels-v2", json=SLOW).json()
    assert job["region"] == "redelivery"

    deadline = time.monotonic() + 60
    while (api.get(f"/v1/jobs/{job['id']}").json().get("progress") or {}).get("step", 0) < 2:
        assert time.monotonic() < deadline, "the job never started denoising"
        time.sleep(0.05)
    live.stack.kill("w-doomed", signal.SIGKILL)
    killed = time.monotonic()
    wait_for(
        lambda: all(
            hb.worker != "w-doomed@reelforge" for hb in fleet(live).live(["reelforge.cpu.redelivery"])
        ),
        10,
        "the killed worker to stop counting",
        every_s=0.05,
    )
    # It stops counting within one heartbeat period (REELFORGE_WORKER_HEARTBEAT_S=2 in the test stack).
    assert time.monotonic() - killed <= 2.2
    killed_at = api.get(f"/v1/jobs/{job['id']}").json()
    assert killed_at["status"] == "running" and killed_at["worker"] == "w-doomed@reelforge"
    assert killed_at["progress"]["step"] < killed_at["progress"]["total"]
    assert broker_copies(live, QUEUE, job["id"]) == 1  # delivered to the dead worker, never acked

    live.stack.start_worker("w-rescue", {"REELFORGE_WORKER_REGION": "redelivery"})
    done = wait_job(api, job["id"], timeout_s=180)
    assert done["status"] == "succeeded", done
    assert done["worker"] == "w-rescue@reelforge"
    assert done["attempts"] == 2
    assert done["result"]["frames"] == 65

    # Exactly once. A copy of the task may still come back (the broker restores a task that runs past
    # its visibility timeout, as this one does on the CPU): it finds the job finished and is dropped.
    # Once the broker holds no copy, queued or unacked, nothing can run the job again.
    wait_for(lambda: broker_copies(live, QUEUE, job["id"]) == 0, 30, "the broker to let go of the task")
    seen = task_seen(live, "w-rescue@reelforge", job["id"])
    assert seen is not None and seen.outcome in (TaskOutcome.RAN, TaskOutcome.DROPPED)
    later = api.get(f"/v1/jobs/{job['id']}").json()
    assert (later["status"], later["attempts"], later["finished_at"]) == ("succeeded", 2, done["finished_at"])
    # Each execution that reaches an end records one sample: one success, no other completion.
    runs = [s for s in fleet(live).samples("tiny-random", QUEUE) if s.job_id == job["id"]]
    assert [s.status for s in runs] == ["succeeded"]
    live.stack.kill("w-rescue")
