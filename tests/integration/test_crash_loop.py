"""A job that kills every worker that runs it fails `worker_lost` after a bounded number of attempts."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.support import ROUTE, SMALL_REQUEST, Live, wait_job

pytestmark = pytest.mark.integration

ELASTIC = SMALL_REQUEST | {"region": "elastic"}


def test_job_that_kills_its_worker_fails_after_bounded_attempts(live: Live, api: httpx.Client) -> None:
    job = api.post(ROUTE, json=ELASTIC | {"prompt": "a volcano [crash]"}).json()
    done = wait_job(api, job["id"], timeout_s=150)
    assert done["status"] == "failed" and done["error"]["code"] == "worker_lost", done
    assert done["attempts"] == 3
    ok = wait_job(api, api.post(ROUTE, json=ELASTIC).json()["id"], timeout_s=90)
    assert ok["status"] == "succeeded"
