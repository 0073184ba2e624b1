"""Idempotency-Key over HTTP: replays return the same job, other bodies are refused, duplicates race."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.integration.support import KEY_B, SMALL_REQUEST, Live

pytestmark = pytest.mark.integration

ROUTE = "/v1/inference/skywork-skyreels-v2"


def test_same_key_same_body_returns_the_same_job(api: httpx.Client) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.post(ROUTE, json=SMALL_REQUEST, headers=key)
    assert first.status_code == 202
    # The same request spelled differently (key order, a default written out) is the same body.
    again = api.post(ROUTE, json={"fps": 24, **dict(reversed(SMALL_REQUEST.items()))}, headers=key)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]


def test_same_key_other_body_is_a_422_that_says_so(api: httpx.Client) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.post(ROUTE, json=SMALL_REQUEST, headers=key).json()
    other = api.post(ROUTE, json=SMALL_REQUEST | {"seed": 9}, headers=key)
    assert other.status_code == 422
    error = other.json()["error"]
    assert error["field"] == "Idempotency-Key" and "different request body" in error["message"]
    assert first["id"] in error["message"]


def test_keys_are_scoped_per_api_key(live: Live, api: httpx.Client) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    mine = api.post(ROUTE, json=SMALL_REQUEST, headers=key).json()
    with live.client(KEY_B) as other:
        theirs = other.post(ROUTE, json=SMALL_REQUEST, headers=key)
    assert theirs.status_code == 202 and theirs.json()["id"] != mine["id"]


def test_concurrent_duplicates_create_one_job(api: httpx.Client) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = SMALL_REQUEST | {"seed": 4242}
    before = {j["id"] for j in api.get("/v1/jobs", params={"limit": 100}).json()["jobs"]}
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda _: api.post(ROUTE, json=body, headers=key), range(12)))
    assert sorted(a.status_code for a in answers) == [200] * 11 + [202]
    assert len({a.json()["id"] for a in answers}) == 1
    after = {j["id"] for j in api.get("/v1/jobs", params={"limit": 100}).json()["jobs"]}
    assert len(after - before) == 1


def test_invalid_request_with_a_key_does_not_burn_the_key(api: httpx.Client) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    assert api.post(ROUTE, json=SMALL_REQUEST | {"width": 40}, headers=key).status_code == 422
    assert api.post(ROUTE, json=SMALL_REQUEST, headers=key).status_code == 202


def test_a_batch_replayed_with_its_key_is_the_same_batch(api: httpx.Client) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    idle = SMALL_REQUEST | {"region": "idle"}  # no worker serves it here: the jobs stay queued
    lines = [idle | {"prompt": "one"}, idle | {"prompt": "two"}]
    first = api.post("/v1/batches", json=lines, headers=key)
    assert first.status_code == 202
    # The same requests as JSONL with their defaults apart: the same batch, no new jobs.
    defaults = {k: v for k, v in idle.items() if k != "prompt"}
    jsonl = '{"prompt": "one"}\n{"prompt": "two"}\n'
    again = api.post(
        "/v1/batches", content=jsonl, params={"defaults": json.dumps(defaults)},
        headers=key | {"Content-Type": "application/x-ndjson"},
    )  # fmt: skip
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"] and again.json()["job_ids"] == first.json()["job_ids"]
    assert len(api.get("/v1/jobs", params={"limit": 100}).json()["jobs"]) == 2
    other = api.post("/v1/batches", json=lines[:1], headers=key)
    assert other.status_code == 422 and other.json()["error"]["field"] == "Idempotency-Key"
    assert f"batch {first.json()['id']}" in other.json()["error"]["message"]
    # A job and a batch with the same key are different things.
    job = api.post(ROUTE, json=idle, headers=key)
    assert job.status_code == 202


def test_concurrent_duplicate_batches_create_one_whole_batch(api: httpx.Client) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    idle = SMALL_REQUEST | {"region": "idle"}
    lines = [idle | {"prompt": f"line {n}"} for n in range(20)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: api.post("/v1/batches", json=lines, headers=key), range(8)))
    assert sorted(a.status_code for a in answers) == [200] * 7 + [202]
    assert len({a.json()["id"] for a in answers}) == 1
    # Every answer shows the whole batch queued: none saw it half made.
    assert all(a.json()["counts"]["queued"] == 20 and a.json()["status"] == "in_progress" for a in answers)
    assert len(api.get("/v1/jobs", params={"limit": 100}).json()["jobs"]) == 20
