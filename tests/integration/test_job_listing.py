"""Listing a key's jobs: newest first, paginated by cursor, filtered by status."""

from __future__ import annotations

import pytest

from tests.integration.support import SMALL_REQUEST, Live, wait_job

pytestmark = pytest.mark.integration


def test_list_jobs_newest_first_paginated_and_filtered(live: Live) -> None:
    with live.client("test-key-b") as client:
        ids = [
            client.post("/v1/inference/skywork-skyreels-v2", json=SMALL_REQUEST).json()["id"]
            for _ in range(3)
        ]
        for job_id in ids:
            wait_job(client, job_id)
        page = client.get("/v1/jobs", params={"limit": 2}).json()
        assert [j["id"] for j in page["jobs"]] == ids[::-1][:2]
        rest = client.get("/v1/jobs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
        assert [j["id"] for j in rest["jobs"]][:1] == [ids[0]]
        assert client.get("/v1/jobs", params={"status": "failed"}).json()["jobs"] == []
        succeeded = client.get("/v1/jobs", params={"status": "succeeded", "limit": 100}).json()["jobs"]
        assert set(ids) <= {j["id"] for j in succeeded}
        bad = client.get("/v1/jobs", params={"status": "bogus"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "status"
