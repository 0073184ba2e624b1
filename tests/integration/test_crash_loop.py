"""A job that kills every worker that runs it fails `worker_lost` after a bounded number of attempts,
and the pool serves the next job.

The `crash` pool's workers are the real one with a fault injected (tests/fixtures/killed_mid_job.py):
each dies by SIGKILL at the first denoising step, so the task comes back after the visibility timeout
to the next worker this test starts.
"""

from __future__ import annotations

import signal

import httpx
import pytest

from shared.fleet import TaskOutcome
from tests.integration.support import ROUTE, SMALL_REQUEST, Live, task_seen, wait_for, wait_job

pytestmark = pytest.mark.integration

CRASH = SMALL_REQUEST | {"region": "crash"}
ENV = {"REELFORGE_WORKER_REGION": "crash"}
MAX_ATTEMPTS = 3  # the stack's REELFORGE_MAX_ATTEMPTS (the default)


def test_job_that_kills_its_worker_fails_after_bounded_attempts(live: Live, api: httpx.Client) -> None:
    job = api.post(ROUTE, json=CRASH).json()
    names = [f"w-crash-{n}" for n in range(1, MAX_ATTEMPTS + 1)] + ["w-crash-healthy"]
    try:
        for attempt, name in enumerate(names[:MAX_ATTEMPTS], start=1):
            proc = live.stack.start_worker(name, ENV, module="tests.fixtures.killed_mid_job")
            assert proc.wait(timeout=120) == -signal.SIGKILL  # it took the job and died running it
            seen = api.get(f"/v1/jobs/{job['id']}").json()
            assert (seen["status"], seen["attempts"], seen["worker"]) == (
                "running",
                attempt,
                f"{name}@reelforge",
            )

        # The task comes back once more, to a worker without the fault: the job has used its attempts.
        live.stack.start_worker(names[-1], ENV)
        done = wait_job(api, job["id"], timeout_s=150)
        assert done["status"] == "failed" and done["error"]["code"] == "worker_lost", done
        assert done["attempts"] == 3

        # That worker ended the job without running it.
        seen = wait_for(lambda: task_seen(live, f"{names[-1]}@reelforge", job["id"]), 10, "the task reported")
        assert seen.outcome == TaskOutcome.ENDED

        ok = wait_job(api, api.post(ROUTE, json=CRASH).json()["id"], timeout_s=90)
        assert ok["status"] == "succeeded"
        assert ok["worker"] == f"{names[-1]}@reelforge"
    finally:
        for name in names:
            live.stack.kill(name)
