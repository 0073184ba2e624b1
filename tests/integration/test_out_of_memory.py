"""A job that runs out of GPU memory fails `out_of_memory`; its worker survives and serves the next."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.support import ROUTE, SMALL_REQUEST, Live, wait_job

pytestmark = pytest.mark.integration

ELASTIC = SMALL_REQUEST | {"region": "elastic"}


def test_out_of_memory_is_survived(live: Live, api: httpx.Client) -> None:
    oom = wait_job(
        api, api.post(ROUTE, json=ELASTIC | {"prompt": "a storm [oom]"}).json()["id"], timeout_s=90
    )
    assert oom["status"] == "failed" and oom["error"]["code"] == "out_of_memory"
    ok = wait_job(api, api.post(ROUTE, json=ELASTIC).json()["id"], timeout_s=60)
    assert ok["status"] == "succeeded" and ok["worker"] == oom["worker"]
    reliability = api.get("/v1/models/skywork-skyreels-v2/reliability",
                          params={"model_version": "tiny-random", "region": "elastic"}).json()  # fmt: skip
    assert reliability["failure_reason_counts"].get("out_of_memory", 0) >= 1
