"""What the integration tests share: the test stack's keys and bucket, a CPU-sized request, and waits
with deadlines (never a fixed sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
import httpx
import redis

from scheduler.dev.stack import Stack
from scheduler.dev.supervisor import Supervisor
from shared.fleet import Fleet
from shared.states import TERMINAL

KEY_A, KEY_B = "test-key-a", "test-key-b"
BUCKET = "reelforge-test"
ROUTE = "/v1/inference/skywork-skyreels-v2"

# CPU-sized version of the catalog's example request.
SMALL_REQUEST: dict[str, Any] = {
    "prompt": "A cat and a dog inspect a compact GPU server in a cozy lab",
    "width": 48,
    "height": 32,
    "num_frames": 17,
    "num_inference_steps": 4,
    "model_version": "tiny-random",
    "region": "local",
}

# Long enough on the CPU to be caught mid-denoising.
SLOW_REQUEST = SMALL_REQUEST | {"num_frames": 65, "width": 128, "height": 128, "num_inference_steps": 60,
                                "causal_block_size": 1, "ar_step": 0}  # fmt: skip

T = TypeVar("T")


@dataclass
class Live:
    stack: Stack
    base: str
    s3_endpoint: str
    supervisor: Supervisor | None = None

    def client(self, key: str = KEY_A) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def s3(self) -> Any:
        return boto3.client(
            "s3", endpoint_url=self.s3_endpoint, region_name="us-east-1", aws_access_key_id="test",
            aws_secret_access_key="test",
        )  # fmt: skip

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.stack.env["REELFORGE_REDIS_URL"], decode_responses=True)


def wait_for(check: Callable[[], T | None], timeout_s: float, what: str, every_s: float = 0.1) -> T:
    """The first truthy value `check` returns, or AssertionError once `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met after {timeout_s:g}s")
        time.sleep(every_s)


def wait_job(
    client: httpx.Client, job_id: str, timeout_s: float = 120, until: frozenset[str] | set[str] = TERMINAL
) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in until:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout_s}s: {job}")
        time.sleep(0.2)


def fleet(live: Live) -> Fleet:
    return Fleet(live.redis())
