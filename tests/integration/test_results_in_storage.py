"""Results that stay usable: poster and sidecar next to the MP4, links re-signed on every read,
retention."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import av
import httpx
import numpy as np
import pytest
from PIL import Image

from scheduler.dev.stack import free_port
from tests.integration.support import BUCKET, KEY_A, SMALL_REQUEST, Live, wait_for, wait_job

pytestmark = pytest.mark.integration

ROUTE = "/v1/inference/skywork-skyreels-v2"


def frames_of(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_poster_and_sidecar_reproduce_the_video(api: httpx.Client) -> None:
    done = wait_job(api, api.post(ROUTE, json=SMALL_REQUEST | {"seed": 31}).json()["id"])
    result = done["result"]
    assert result["poster_key"] == f"videos/{done['id']}.jpg"
    poster = Image.open(io.BytesIO(httpx.get(result["poster_url"]).content))
    assert (poster.format, poster.size) == ("JPEG", (48, 32))
    video = frames_of(httpx.get(result["video_url"]).content)
    assert np.abs(np.asarray(poster, dtype=int) - video[0].astype(int)).mean() < 12  # the first frame

    meta = httpx.get(result["sidecar_url"]).json()
    assert meta["request"] == done["request"] and meta["seed"] == 31
    assert meta["model_version"] == "tiny-random" and meta["model_revision"].startswith("built in code")
    assert meta["versions"]["reelforge"] and meta["versions"]["diffusers"] and meta["sampler"] == "fast"
    assert meta["timings"]["model_s"] > 0 and meta["output"]["frames"] == 17
    assert (meta["gpu_type"], meta["region"], meta["worker"]) == ("CPU", "local", done["worker"])

    # Resubmitting what the sidecar recorded generates the same frames (their SHA-256 is in the
    # sidecar). The MP4s can still differ slightly: x264 was seen to vary at tiny frame sizes.
    again = wait_job(api, api.post(ROUTE, json=meta["request"]).json()["id"])["result"]
    again_meta = httpx.get(again["sidecar_url"]).json()
    assert again_meta["output"]["frames_sha256"] == meta["output"]["frames_sha256"]
    decoded = frames_of(httpx.get(again["video_url"]).content)
    assert decoded.shape == video.shape and np.abs(decoded.astype(int) - video.astype(int)).mean() < 1


@pytest.fixture(scope="module")
def short_links_api(live: Live) -> Iterator[str]:
    """A second API on the same Redis and S3 whose links live 2 s."""
    base = live.stack.start_api(
        free_port(), name="api-short-links", extra_env={"REELFORGE_PRESIGN_EXPIRY_S": "2"}
    )
    yield base
    live.stack.kill("api-short-links")


def test_expired_link_is_refreshed_on_read(api: httpx.Client, short_links_api: str) -> None:
    job = wait_job(api, api.post(ROUTE, json=SMALL_REQUEST).json()["id"])
    headers = {"Authorization": f"Bearer {KEY_A}"}
    first = httpx.get(f"{short_links_api}/v1/jobs/{job['id']}", headers=headers).json()["result"]
    assert httpx.get(first["video_url"]).status_code == 200
    assert abs(signed_until(first["video_url"]) - parse_dt(first["video_url_expires_at"])) <= timedelta(
        seconds=1
    )
    wait_for(lambda: signed_until(first["video_url"]) < datetime.now(UTC), 10, "the first link to lapse")
    # moto does not enforce presigned expiry, so check the signature's own terms: it has lapsed.
    assert signed_until(first["video_url"]) < datetime.now(UTC)
    fresh = httpx.get(f"{short_links_api}/v1/jobs/{job['id']}", headers=headers).json()["result"]
    assert fresh["video_url"] != first["video_url"]
    assert signed_until(fresh["video_url"]) > datetime.now(UTC)
    assert httpx.get(fresh["video_url"]).content[4:8] == b"ftyp"


def parse_dt(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def signed_until(url: str) -> datetime:
    """When a SigV4 presigned URL stops being valid: X-Amz-Date + X-Amz-Expires."""
    query = parse_qs(urlparse(url).query)
    signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return signed + timedelta(seconds=int(query["X-Amz-Expires"][0]))


def test_past_retention_no_link_is_handed_out(live: Live, api: httpx.Client) -> None:
    job = wait_job(api, api.post(ROUTE, json=SMALL_REQUEST).json()["id"])
    base = live.stack.start_api(
        free_port(), name="api-no-retention", extra_env={"REELFORGE_RETENTION_DAYS": "0"}
    )
    try:
        result = httpx.get(f"{base}/v1/jobs/{job['id']}", headers={"Authorization": f"Bearer {KEY_A}"}).json()
        assert result["result"]["video_url"] is None and result["links"]["video"] is None
        assert result["result"]["retained_until"] == job["finished_at"]
    finally:
        live.stack.kill("api-no-retention")


def test_storage_lifecycle_command_sets_the_bucket_rule(live: Live) -> None:
    env = os.environ | live.stack.env | {"REELFORGE_RETENTION_DAYS": "7"}
    run = subprocess.run([sys.executable, "-m", "scheduler.dev.cli", "storage-lifecycle"], env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    rules = live.s3().get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert {(r["Filter"]["Prefix"], r["Expiration"]["Days"]) for r in rules} == {
        ("videos/", 7),
        ("batches/", 7),
    }
