"""Nothing lost, nothing stuck, every event delivered, under the faults a production stack meets.

Each scenario runs on a fresh stack (tests/faults/conftest.py) and ends with the same invariants:
every accepted job ends in a terminal state with a reason, none completes twice, no object is missing
for a succeeded job, and every job's `job.completed` arrives exactly once (one webhook-id) with a
valid signature. Sizes grow with FAULT_SCALE (`make faults`)."""

from __future__ import annotations

import signal
import uuid

import httpx
import pytest

from scheduler.dev.stack import free_port
from shared.states import JobStatus
from tests.faults.conftest import REQUEST, SCALE, Faults, assert_clean
from tests.integration.support import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def running_on(f: Faults, client: httpx.Client, job_ids: list[str]) -> str | None:
    """The name of a worker (as the stack knows it) running one of these jobs now."""
    for job_id in job_ids:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] == "running" and job["worker"]:
            name = job["worker"].split("@")[0]
            if name in f.stack.procs:
                return name
    return None


def test_workers_killed_mid_job(faults: Faults) -> None:
    jobs, kills = 6 * SCALE, 3 * SCALE
    for _ in range(2):
        faults.start_worker()
    with faults.client() as c:
        ids = [faults.submit(c).json()["id"] for _ in range(jobs)]
        for _ in range(kills):
            victim = wait_for(lambda: running_on(faults, c, ids), 120, "a job running on a worker")
            faults.stack.kill(victim, signal.SIGKILL)
            faults.start_worker()
        row = faults.invariants("workers SIGKILLed mid-job", faults.settle(c, ids, 300 * SCALE), kills, jobs)
    assert_clean(row)


def test_redis_killed_and_restarted_with_aof_under_load(faults: Faults) -> None:
    restarts = SCALE
    faults.start_worker()
    accepted: list[str] = []
    with faults.client() as c:
        for _ in range(restarts):
            accepted += [faults.submit(c).json()["id"] for _ in range(4)]
            faults.restart_redis()
            accepted += [faults.submit(c).json()["id"] for _ in range(2)]
        row = faults.invariants("Redis SIGKILLed and restarted (AOF)", faults.settle(c, accepted, 300),
                                restarts, len(accepted))  # fmt: skip
    assert_clean(row)


def terminal_exec(sent: bytes) -> bool:
    """The client's latest bytes end a transaction (EXEC) that wrote a succeeded job record."""
    last = sent.rfind(b"MULTI")
    return last >= 0 and sent.endswith(b"EXEC\r\n") and b'"status":"succeeded"' in sent[last:]


def test_worker_loses_redis_right_after_the_terminal_exec(faults: Faults) -> None:
    """The transaction that marks the job succeeded is applied; its reply never reaches the worker."""
    faults.start_worker(through_proxy=True)
    cuts = SCALE
    with faults.client() as c:
        ids = []
        for _ in range(cuts):
            faults.redis_proxy.cut_after(terminal_exec)
            ids.append(faults.submit(c).json()["id"])
            wait_for(lambda: faults.redis_proxy.cut_when is None, 120, "the cut after the terminal EXEC")
        row = faults.invariants("worker's Redis cut after terminal EXEC", faults.settle(c, ids, 120),
                                faults.redis_proxy.cuts, len(ids))  # fmt: skip
    assert faults.redis_proxy.cuts == cuts
    assert_clean(row)
    assert row["succeeded"] == cuts


@pytest.mark.parametrize("mode", ["http503", "blackhole"])
def test_storage_outage_longer_than_the_client_retries(faults: Faults, mode: str) -> None:
    faults.start_worker()
    with faults.client() as c:
        faults.s3_proxy.set_mode(mode)
        ids = [faults.submit(c).json()["id"] for _ in range(2 * SCALE)]
        wait_for(lambda: any(c.get(f"/v1/jobs/{j}").json()["progress"] and
                             c.get(f"/v1/jobs/{j}").json()["progress"]["phase"] == "uploading" for j in ids),
                 120, "a job waiting for storage in phase uploading")  # fmt: skip
        # The outage lasts past boto's own three tries and into the worker's retries.
        tried = faults.s3_proxy.accepted
        wait_for(lambda: faults.s3_proxy.accepted >= tried + 6, 120, "uploads retried through the outage")
        faults.s3_proxy.set_mode("pass")
        row = faults.invariants(f"S3 {mode}, 6+ tries", faults.settle(c, ids, 300), 1, len(ids))
    assert_clean(row)
    assert row["succeeded"] == len(ids)


def test_enqueue_dropped_between_record_and_send(faults: Faults) -> None:
    faults.start_worker()
    faults.stack.kill("api")
    faults.stack.env["REELFORGE_TEST_ENQUEUE_FAILURES"] = "2"
    faults.base = faults.stack.start_api(free_port(), module="tests.fixtures.enqueue_fails")
    with faults.client() as c:
        key = {"Idempotency-Key": f"fault-{uuid.uuid4().hex}"}
        body = {"webhook_url": faults.receiver.url}
        first = c.post("/v1/inference/skywork-skyreels-v2", json=REQUEST | body, headers=key)
        assert first.status_code == 503 and first.json()["error"]["code"] == "unavailable"
        again = c.post("/v1/inference/skywork-skyreels-v2", json=REQUEST | body, headers=key)
        assert again.status_code == 200
        kept = again.json()["id"]
        unkeyed = faults.submit(c)  # the second injected failure: no key, so the job ends failed now
        assert unkeyed.status_code == 503
        listed = [j["id"] for j in c.get("/v1/jobs", params={"limit": 10}).json()["jobs"]]
        assert kept in listed and len(listed) == 2
        failed = next(j for j in listed if j != kept)
        jobs = faults.settle(c, [kept, failed], 120)
        row = faults.invariants("API enqueue dropped", jobs, 2, 2)
    assert_clean(row)
    by_id = {j["id"]: j for j in jobs}
    assert by_id[kept]["status"] == "succeeded"
    assert (by_id[failed]["status"], by_id[failed]["error"]["code"]) == ("failed", "unavailable")


def test_webhook_receiver_down_then_up(faults: Faults) -> None:
    faults.receiver.down()
    faults.start_worker()
    with faults.client() as c:
        ids = [faults.submit(c).json()["id"] for _ in range(3 * SCALE)]
        wait_for(lambda: all(JobStatus(c.get(f"/v1/jobs/{j}").json()["status"]).terminal for j in ids), 120,
                 "the jobs to end while the receiver is down")  # fmt: skip
        failing = c.get(f"/v1/jobs/{ids[0]}").json()["webhooks"]
        assert failing and failing[0]["status"] == "pending" and failing[0]["attempts"]
        faults.receiver.up()
        row = faults.invariants("webhook receiver down, then up", faults.settle(c, ids, 120), 1, len(ids))
    assert_clean(row)
