"""A job that runs out of GPU memory fails `out_of_memory`; its worker survives and serves the next.

The `oom` pool's worker is the real one with a fault injected (tests/fixtures/oom_in_step.py): its
first job runs out of memory at the first denoising step, later jobs run normally.
"""

from __future__ import annotations

import httpx
import pytest

from tests.integration.support import ROUTE, SMALL_REQUEST, Live, wait_job

pytestmark = pytest.mark.integration

OOM = SMALL_REQUEST | {"region": "oom"}


def test_out_of_memory_is_survived(live: Live, api: httpx.Client) -> None:
    live.stack.start_worker("w-oom", {"REELFORGE_WORKER_REGION": "oom"}, module="tests.fixtures.oom_in_step")
    try:
        oom = wait_job(api, api.post(ROUTE, json=OOM).json()["id"], timeout_s=90)
        assert oom["status"] == "failed" and oom["error"]["code"] == "out_of_memory"
        assert oom["worker"] == "w-oom@reelforge"
        ok = wait_job(api, api.post(ROUTE, json=OOM).json()["id"], timeout_s=60)
        assert ok["status"] == "succeeded" and ok["worker"] == oom["worker"]
        reliability = api.get("/v1/models/skywork-skyreels-v2/reliability",
                              params={"model_version": "tiny-random", "region": "oom"}).json()  # fmt: skip
        assert reliability["failure_reason_counts"].get("out_of_memory", 0) >= 1
        assert reliability["failure_reason_counts"] == {"out_of_memory": 1}
    finally:
        live.stack.kill("w-oom")
