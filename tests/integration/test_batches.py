"""Batches on the real stack: validate every line first, one job per line, a manifest once all end."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from scheduler.client import ReelForge
from shared import keys
from shared.batchstore import BatchStore
from shared.errors import ErrorCode
from shared.jobstore import JobStore
from shared.schemas import JobError
from shared.states import JobStatus
from tests.integration.support import BUCKET, KEY_A, KEY_B, ROUTE, SMALL_REQUEST, Live, wait_for, wait_job

pytestmark = pytest.mark.integration

DEFAULTS = {k: v for k, v in SMALL_REQUEST.items() if k != "prompt"}
IDLE = SMALL_REQUEST | {"region": "idle"}  # no worker serves it here: jobs stay queued
ROOT = Path(__file__).parents[2]


def post_jsonl(client: httpx.Client, lines: list[str], defaults: dict | None = None) -> httpx.Response:
    params = {"defaults": json.dumps(defaults)} if defaults is not None else None
    return client.post(
        "/v1/batches",
        content="\n".join(lines) + "\n",
        params=params,
        headers={"Content-Type": "application/x-ndjson"},
    )


def wait_batch(client: httpx.Client, batch_id: str, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get(f"/v1/batches/{batch_id}")
        assert response.status_code == 200, response.text
        batch = response.json()
        if batch["status"] == "completed":
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} still {batch['status']} after {timeout_s}s: {batch}")
        time.sleep(0.5)


def batch_store(live: Live) -> BatchStore:
    client = redis.Redis.from_url(live.stack.env["REELFORGE_REDIS_URL"], decode_responses=True)
    return BatchStore(client, ttl_s=3600)


def wait_manifest_written(live: Live, batch_id: str, timeout_s: float = 120) -> None:
    """Without reading the batch through the API (a read may write the manifest itself)."""
    batches = batch_store(live)
    deadline = time.monotonic() + timeout_s
    while (record := batches.get(batch_id)) is None or record.manifest_key is None:
        assert time.monotonic() < deadline, f"no manifest for batch {batch_id} after {timeout_s}s"
        time.sleep(0.2)
    batches.r.close()


def manifest_of(batch: dict) -> list[dict[str, Any]]:
    response = httpx.get(batch["manifest"]["url"], timeout=30)
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def job_ids_of(client: httpx.Client) -> set[str]:
    ids: set[str] = set()
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/jobs", params=params).json()
        ids |= {job["id"] for job in page["jobs"]}
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


def seconds_per_job(api: httpx.Client) -> float:
    """One job like the batch's lines, submission to success, timed on this machine as it is now."""
    started = time.monotonic()
    job = api.post(ROUTE, json=SMALL_REQUEST | {"prompt": "A cat and a dog inspect GPU server timing"}).json()
    assert wait_job(api, job["id"])["status"] == "succeeded"
    return time.monotonic() - started


def test_jsonl_batch_of_50_completes_with_a_manifest(live: Live, api: httpx.Client) -> None:
    # One worker runs the lines one after another: the deadline follows this machine's measured pace,
    # so a loaded machine makes the test slower, not red.
    deadline_s = 50 * seconds_per_job(api) * 3 + 60
    lines = [json.dumps({"prompt": f"A cat and a dog inspect GPU server {i}", "seed": i}) for i in range(50)]
    accepted = post_jsonl(api, lines, DEFAULTS)
    assert accepted.status_code == 202, accepted.text
    batch = accepted.json()
    assert batch["total"] == 50 and len(batch["job_ids"]) == len(set(batch["job_ids"])) == 50
    assert batch["lines"] == list(range(1, 51))
    assert batch["status"] in ("in_progress", "finalizing") and batch["manifest"] is None
    assert batch["links"]["self"].endswith(f"/v1/batches/{batch['id']}")

    # Each line is an ordinary job of the batch: the defaults under the line's own fields.
    job = api.get(f"/v1/jobs/{batch['job_ids'][7]}").json()
    assert job["batch_id"] == batch["id"]
    assert (job["request"]["seed"], job["request"]["width"], job["request"]["region"]) == (7, 48, "local")
    assert job["request"]["prompt"] == "A cat and a dog inspect GPU server 7"

    done = wait_batch(api, batch["id"], timeout_s=deadline_s)
    assert done["counts"] == {
        "queued": 0, "running": 0, "succeeded": 50, "failed": 0, "canceled": 0, "expired": 0
    }  # fmt: skip
    assert done["progress"] == 1.0 and done["completed_at"] is not None
    assert done["job_ids"] == batch["job_ids"]
    manifest = done["manifest"]
    assert manifest["storage_key"] == f"batches/{batch['id']}/manifest.jsonl"
    assert manifest["lines"] == 50
    s3 = live.s3()
    written = s3.head_object(Bucket=BUCKET, Key=manifest["storage_key"])["LastModified"]

    entries = manifest_of(done)
    assert [e["line"] for e in entries] == list(range(1, 51))
    assert [e["job_id"] for e in entries] == batch["job_ids"]
    for entry in entries:
        assert entry["status"] == "succeeded" and entry["error"] is None, entry
        assert entry["storage_key"] == f"videos/{entry['job_id']}.mp4"
        head = s3.head_object(Bucket=BUCKET, Key=entry["storage_key"])
        video = httpx.get(entry["video_url"], timeout=30)
        assert video.status_code == 200
        assert video.content[4:8] == b"ftyp" and len(video.content) == head["ContentLength"]
        assert entry["video_url_expires_at"] >= manifest["video_urls_expire_at"]

    # The manifest's own link is signed again on every read (S3 signs to the second); the manifest
    # itself is written once.
    def resigned() -> dict | None:
        view = api.get(f"/v1/batches/{batch['id']}").json()
        return view if view["manifest"]["url"] != manifest["url"] else None

    again = wait_for(resigned, 10, "a read with a newly signed manifest link", every_s=0.2)
    assert again["manifest"]["url"] != manifest["url"]
    assert again["manifest"]["url_expires_at"] > manifest["url_expires_at"]
    assert again["completed_at"] == done["completed_at"]
    assert s3.head_object(Bucket=BUCKET, Key=manifest["storage_key"])["LastModified"] == written


def test_one_bad_line_refuses_the_whole_batch(api: httpx.Client) -> None:
    before = job_ids_of(api)
    lines = [json.dumps({"prompt": f"line {i}"}) for i in range(1, 11)]
    lines[6] = json.dumps({"prompt": "line 7", "width": 40})
    refused = post_jsonl(api, lines, DEFAULTS)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["line"], error["field"]) == ("invalid_input", 7, "width")
    assert error["message"] == "line 7: width: must be a multiple of 16, got 40"
    assert error["invalid_lines"] == 1
    assert job_ids_of(api) == before


def test_every_bad_line_is_reported_routing_included(api: httpx.Client) -> None:
    before = job_ids_of(api)
    lines = [
        json.dumps({"prompt": "fine"}),
        "",  # blank lines are skipped but keep the file's line numbers
        json.dumps({"prompt": "nowhere", "region": "atlantis"}),  # a routing refusal
        json.dumps({"prompt": "fine"}),
        '{"prompt": "broken"',
        json.dumps({"prompt": "wrong gpu", "gpu_type": "B200"}),  # no pool serves tiny-random on B200
        json.dumps({"prompt": "extra", "colour": "red"}),
        json.dumps({"prompt": "frames", "num_frames": 18}),
    ]
    refused = post_jsonl(api, lines, DEFAULTS)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert (error["line"], error["field"]) == (3, "region")
    assert error["message"].startswith("line 3: region: unknown region 'atlantis'")
    found = [(e["line"], e["field"], e["code"]) for e in error["errors"]]
    assert found == [
        (3, "region", "no_capacity"),
        (5, None, "invalid_input"),
        (6, "gpu_type", "no_capacity"),
        (7, "colour", "invalid_input"),
        (8, "num_frames", "invalid_input"),
    ]
    assert "not valid JSON" in error["errors"][1]["message"]
    assert job_ids_of(api) == before


def test_json_forms_and_defaults(live: Live, api: httpx.Client) -> None:
    body = {
        "defaults": DEFAULTS | {"fps": 12},
        "requests": [{"prompt": "first"}, {"prompt": "second", "seed": 5, "fps": 8}],
    }
    accepted = api.post("/v1/batches", json=body)
    assert accepted.status_code == 202, accepted.text
    # The worker that ends the last job writes the manifest (its JobStore listener).
    wait_manifest_written(live, accepted.json()["id"])
    batch = wait_batch(api, accepted.json()["id"])
    assert batch["counts"]["succeeded"] == 2
    first, second = (api.get(f"/v1/jobs/{i}").json() for i in batch["job_ids"])
    assert (first["request"]["prompt"], first["request"]["fps"], first["result"]["fps"]) == ("first", 12, 12)
    assert (second["request"]["seed"], second["request"]["fps"], second["result"]["fps"]) == (5, 8, 8)
    assert [(e["line"], e["status"]) for e in manifest_of(batch)] == [(1, "succeeded"), (2, "succeeded")]

    plain = api.post("/v1/batches", json=[SMALL_REQUEST])
    assert plain.status_code == 202, plain.text
    assert plain.json()["total"] == 1
    assert wait_batch(api, plain.json()["id"])["counts"]["succeeded"] == 1


@pytest.mark.parametrize(
    ("body", "status", "field", "rule"),
    [
        (
            {"defaults": {"colour": "red"}, "requests": [SMALL_REQUEST]},
            422,
            "defaults",
            "unknown fields colour",
        ),
        ([], 422, "requests", "must hold at least one request"),
        ([SMALL_REQUEST] * 1001, 422, "requests", "at most 1000 requests per batch"),
        ({"requests": SMALL_REQUEST}, 422, "requests", "must be a JSON array"),
        ([SMALL_REQUEST, "a string"], 422, None, "line 2: must be a JSON object"),
    ],
)
def test_malformed_batches_are_refused(
    api: httpx.Client, body: Any, status: int, field: str | None, rule: str
) -> None:
    before = job_ids_of(api)
    refused = api.post("/v1/batches", json=body)
    assert refused.status_code == status, refused.text
    error = refused.json()["error"]
    assert error.get("field") == field
    assert rule in error["message"]
    assert job_ids_of(api) == before


def test_unsupported_content_type(api: httpx.Client) -> None:
    refused = api.post("/v1/batches", content=b"prompt\nhello\n", headers={"Content-Type": "text/csv"})
    assert refused.status_code == 415
    assert refused.json()["error"]["field"] == "content-type"


def test_cancel_a_batch_and_ownership(live: Live, api: httpx.Client) -> None:
    accepted = api.post("/v1/batches", json=[IDLE | {"seed": i} for i in range(5)])
    assert accepted.status_code == 202, accepted.text
    batch = accepted.json()
    assert batch["counts"]["queued"] == 5 and batch["status"] == "in_progress" and batch["progress"] == 0.0

    with live.client(KEY_B) as other:
        assert other.get(f"/v1/batches/{batch['id']}").status_code == 404
        assert other.post(f"/v1/batches/{batch['id']}/cancel").status_code == 404
    assert api.get(f"/v1/batches/{batch['id']}").json()["counts"]["queued"] == 5

    canceled = api.post(f"/v1/batches/{batch['id']}/cancel")
    assert canceled.status_code == 200, canceled.text
    view = canceled.json()
    assert view["counts"]["canceled"] == 5 and view["counts"]["queued"] == 0
    assert view["status"] == "completed" and view["canceled_at"] is not None and view["progress"] == 1.0
    for job_id in batch["job_ids"]:
        assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "canceled"
    entries = manifest_of(view)
    assert [e["job_id"] for e in entries] == batch["job_ids"]
    assert {(e["status"], e["error"]["code"], e["video_url"]) for e in entries} == {
        ("canceled", "canceled", None)
    }

    again = api.post(f"/v1/batches/{batch['id']}/cancel")
    assert again.status_code == 200 and again.json()["counts"]["canceled"] == 5
    assert api.get("/v1/batches/nonexistent").status_code == 404


def test_a_read_writes_the_manifest_the_relay_never_wrote(live: Live, api: httpx.Client) -> None:
    batch = api.post("/v1/batches", json=[IDLE, IDLE | {"seed": 1}]).json()
    # The jobs' records say ended but their outbox entries are gone (say, a Redis failover lost the
    # stream's tail): nothing will tell the relay, and a read of the batch must finish it.
    client = redis.Redis.from_url(live.stack.env["REELFORGE_REDIS_URL"], decode_responses=True)
    bare = JobStore(client, ttl_s=3600)
    for job_id in batch["job_ids"]:
        ended = bare.require(job_id)
        ended.move(JobStatus.CANCELED)
        ended.error = JobError(code=ErrorCode.CANCELED, message="ended elsewhere")
        client.set(keys.job(job_id), ended.model_dump_json(), keepttl=True)
    record = BatchStore.of(bare).get(batch["id"])
    assert record is not None and record.manifest_key is None

    view = api.get(f"/v1/batches/{batch['id']}").json()
    assert view["status"] == "completed" and view["counts"]["canceled"] == 2
    assert [e["status"] for e in manifest_of(view)] == ["canceled", "canceled"]
    record = BatchStore.of(bare).get(batch["id"])
    assert record is not None and record.manifest_key == f"batches/{batch['id']}/manifest.jsonl"
    client.close()


def test_batches_are_listed_newest_first_per_api_key(live: Live, api: httpx.Client) -> None:
    made = [api.post("/v1/batches", json=[IDLE | {"prompt": f"batch {n}"}]).json()["id"] for n in range(3)]
    first = api.get("/v1/batches", params={"limit": 2}).json()
    assert [b["id"] for b in first["batches"]] == made[::-1][:2]
    assert first["batches"][0]["counts"]["queued"] == 1
    rest = api.get("/v1/batches", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [b["id"] for b in rest["batches"]] == made[:1] and rest["next_cursor"] is None
    with live.client(KEY_B) as other:
        assert other.get("/v1/batches").json() == {"batches": [], "next_cursor": None}
    bad = api.get("/v1/batches", params={"cursor": "soon"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"
    with ReelForge(live.base, KEY_A) as rf:
        assert [b["id"] for b in rf.list_batches(limit=2, page_size=1)] == made[::-1][:2]
