"""The fault suite's stack, fresh for each scenario: redis-server with AOF, moto's S3 server behind a
fault proxy, the API, the delivery worker, a webhook receiver, CPU workers on the `faults` pool
(optionally reaching Redis through a fault proxy), and the invariants every scenario ends with.

`FAULT_SCALE` (1 in `make test`, larger in `make faults`) multiplies jobs and faults; each scenario
adds a row to the table printed at the end (and written to `FAULT_REPORT` when set)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from scheduler.dev.stack import Stack, free_port, wait_until
from shared.states import JobStatus
from tests.faults.proxy import FaultProxy
from tests.faults.receiver import Receiver

SCALE = int(os.environ.get("FAULT_SCALE", "1"))
KEY = "fault-key-" + "k" * 32
BUCKET = "reelforge-faults"
QUEUE = "reelforge.cpu.faults"
POOLS = [{"gpu_type": "CPU", "region": "faults", "model_versions": ["tiny-random"]}]
REQUEST = {"prompt": "a storm over the sea", "width": 48, "height": 32, "num_frames": 17,
           "num_inference_steps": 4, "model_version": "tiny-random"}  # fmt: skip
ROWS: list[dict[str, Any]] = []


@dataclass
class Faults:
    stack: Stack
    base: str
    redis_port: int
    redis_proxy: FaultProxy
    s3_proxy: FaultProxy
    s3_endpoint: str
    receiver: Receiver
    workers: list[str] = field(default_factory=list)
    counter: int = 0

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)

    def start_worker(self, through_proxy: bool = False, module: str = "workers") -> str:
        self.counter += 1
        name = f"fw{self.counter}"
        env = {"REELFORGE_WORKER_REGION": "faults"}
        if through_proxy:
            env["REELFORGE_REDIS_URL"] = f"redis://127.0.0.1:{self.redis_proxy.port}/0"
        self.stack.start_worker(name, env, module=module)
        self.workers.append(name)
        return name

    def restart_redis(self) -> None:
        """SIGKILL redis-server and start it again on the same port and append-only file."""
        self.stack.kill("redis", 9)
        self.stack.start_redis(self.redis_port, persist=True)

    def submit(self, client: httpx.Client, **extra: Any) -> httpx.Response:
        body = REQUEST | {"webhook_url": self.receiver.url} | extra
        return client.post("/v1/inference/skywork-skyreels-v2", json=body)

    def settle(self, client: httpx.Client, job_ids: list[str], timeout_s: float) -> list[dict[str, Any]]:
        """Wait until every job ended and its completed webhook arrived; the jobs as they ended."""

        def done() -> bool:
            jobs = [client.get(f"/v1/jobs/{j}").json() for j in job_ids]
            ended = all(JobStatus(j["status"]).terminal for j in jobs)
            return ended and all(self.receiver.completed.get(j) for j in job_ids)

        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            time.sleep(0.5)  # the invariants below say what is missing; they decide, not this wait
        return [client.get(f"/v1/jobs/{j}").json() for j in job_ids]

    def invariants(self, scenario: str, jobs: list[dict[str, Any]], faults: int, accepted: int) -> dict:
        """Every accepted job ended with a reason, none twice, no object missing, one completed event."""
        s3 = boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip
        stuck = [j["id"] for j in jobs if not JobStatus(j["status"]).terminal]
        no_reason = [
            j["id"] for j in jobs if j["status"] not in ("succeeded", "queued", "running") and not j["error"]
        ]
        missing_objects = []
        for j in jobs:
            if j["status"] == "succeeded":
                try:
                    s3.head_object(Bucket=BUCKET, Key=j["result"]["storage_key"])
                except Exception:
                    missing_objects.append(j["id"])
        completed = {j["id"]: self.receiver.completed.get(j["id"], set()) for j in jobs}
        row = {
            "scenario": scenario,
            "jobs": accepted,
            "faults": faults,
            "lost": accepted - len(jobs),
            "stuck": len(stuck),
            "no_reason": len(no_reason),
            "missing_objects": len(missing_objects),
            "double_completed": sum(len(ids) > 1 for ids in completed.values()),
            "missing_webhooks": sum(not ids for ids in completed.values()),
            "bad_signatures": self.receiver.bad_signatures,
            "succeeded": sum(j["status"] == "succeeded" for j in jobs),
        }
        ROWS.append(row)
        return row


CLEAN = {"lost": 0, "stuck": 0, "no_reason": 0, "missing_objects": 0, "double_completed": 0,
         "missing_webhooks": 0, "bad_signatures": 0}  # fmt: skip


def assert_clean(row: dict[str, Any]) -> None:
    assert {k: row[k] for k in CLEAN} == CLEAN, row


@pytest.fixture
def faults(tmp_path: Path) -> Iterator[Faults]:
    stack = Stack(tmp_path)
    try:
        yield _start(stack, tmp_path, api_module=os.environ.get("FAULT_API_MODULE", "scheduler"))
    finally:
        stack.stop()


def _start(stack: Stack, tmp: Path, api_module: str) -> Faults:
    s3_port = free_port()
    s3 = stack.spawn("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)])
    wait_until(lambda: httpx.get(f"http://127.0.0.1:{s3_port}", timeout=2).status_code < 500, 30, "moto", s3)
    s3_proxy = FaultProxy(s3_port)
    s3_endpoint = f"http://127.0.0.1:{s3_proxy.port}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test").create_bucket(Bucket=BUCKET)  # fmt: skip
    receiver = Receiver(free_port())
    stack.env.update(_env(s3_endpoint, receiver))
    redis_port = free_port()
    stack.start_redis(redis_port, persist=True)
    redis_proxy = FaultProxy(redis_port)
    base = stack.start_api(free_port(), module=api_module)
    stack.start_delivery()
    f = Faults(stack, base, redis_port, redis_proxy, s3_proxy, s3_endpoint, receiver)
    with f.client() as c:
        receiver.secret = c.get("/v1/webhooks/secret").json()["secret"]
    receiver.up()
    return f


def _env(s3_endpoint: str, receiver: Receiver) -> dict[str, str]:
    return {
        "REELFORGE_API_KEYS": KEY,
        "REELFORGE_POOLS": json.dumps(POOLS),
        "REELFORGE_STORAGE_BACKEND": "s3",
        "REELFORGE_S3_ENDPOINT_URL": s3_endpoint,
        "REELFORGE_S3_BUCKET": BUCKET,
        "REELFORGE_S3_ACCESS_KEY_ID": "test",
        "REELFORGE_S3_SECRET_ACCESS_KEY": "test",
        "REELFORGE_S3_TIMEOUT_S": "2",
        "REELFORGE_STORAGE_RETRY_S": "120",
        "REELFORGE_VISIBILITY_TIMEOUT_S": "6",
        "REELFORGE_RESTORE_INTERVAL_S": "1",
        "REELFORGE_WORKER_HEARTBEAT_S": "2",
        "REELFORGE_SWEEP_INTERVAL_S": "1",
        "REELFORGE_EXECUTION_TIMEOUT_S": "60",
        "REELFORGE_MAX_ATTEMPTS": "4",
        "REELFORGE_RATE_LIMIT_PER_S": "0",
        "REELFORGE_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "REELFORGE_WEBHOOK_RETRY_BASE_S": "0.2",
        "REELFORGE_WEBHOOK_RETRY_MAX_DELAY_S": "1",
        "REELFORGE_WEBHOOK_RETRY_WINDOW_S": "300",
        "REELFORGE_WEBHOOK_POLL_INTERVAL_S": "0.2",
        "REELFORGE_WEBHOOK_TIMEOUT_S": "3",
    }


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    head = list(ROWS[0])
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    lines += [" | ".join(str(r[h]) for h in head) for r in ROWS]
    terminalreporter.write_sep("=", f"fault suite (FAULT_SCALE={SCALE})")
    for line in lines:
        terminalreporter.write_line(line)
    report = os.environ.get("FAULT_REPORT")
    if report:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text("\n".join(lines) + "\n")
