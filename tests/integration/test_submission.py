"""Submit over HTTP → GPU-typed queue → worker → MP4 in S3 → poll → download → decode."""

from __future__ import annotations

from pathlib import Path

import av
import httpx
import pytest

from tests.integration.support import BUCKET, SMALL_REQUEST, Live, wait_job

pytestmark = pytest.mark.integration


def decode(path: Path) -> tuple[int, float, int, int, str, str]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return (
            frames,
            float(stream.average_rate),
            stream.width,
            stream.height,
            stream.codec_context.name,
            str(stream.format.name),
        )


def test_submit_poll_download_decode(live: Live, api: httpx.Client, tmp_path: Path) -> None:
    body = SMALL_REQUEST | {"fps": 12, "seed": 5}
    accepted = api.post("/v1/inference/skywork-skyreels-v2", json=body)
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert job["status"] == "queued"
    assert job["links"]["self"].endswith(f"/v1/jobs/{job['id']}")
    assert (job["gpu_type"], job["region"]) == ("CPU", "local")

    done = wait_job(api, job["id"])
    assert done["status"] == "succeeded", done
    assert done["worker"] == "w-local@reelforge"
    assert done["progress"]["step"] == done["progress"]["total"] > 0
    assert done["progress"]["fraction"] == 1.0
    for name in ("queue_wait_s", "model_s", "encode_s", "upload_s"):
        assert done["timings"][name] is not None and done["timings"][name] >= 0
    result = done["result"]
    assert result["storage_key"] == f"videos/{job['id']}.mp4"
    assert (result["frames"], result["fps"], result["width"], result["height"]) == (17, 12, 48, 32)
    assert result["video_url"].startswith(live.s3_endpoint) and "X-Amz-Signature" in result["video_url"]

    head = live.s3().head_object(Bucket=BUCKET, Key=result["storage_key"])
    assert head["ContentLength"] == result["bytes"]
    assert head["ContentType"] == "video/mp4"

    video = tmp_path / "out.mp4"
    response = httpx.get(result["video_url"], timeout=30)
    assert response.status_code == 200
    video.write_bytes(response.content)
    assert len(response.content) == result["bytes"]
    assert decode(video) == (17, 12.0, 48, 32, "h264", "yuv420p")
    # faststart: the index (moov) precedes the media data, so browsers play before the download ends.
    data = video.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")


def test_two_different_requests_in_a_row_on_one_worker(api: httpx.Client) -> None:
    first = api.post(
        "/v1/inference/skywork-skyreels-v2", json=SMALL_REQUEST | {"num_frames": 37, "causal_block_size": 5}
    ).json()
    second = api.post(
        "/v1/inference/skywork-skyreels-v2",
        json=SMALL_REQUEST | {"num_frames": 21, "causal_block_size": 1, "ar_step": 0, "width": 32},
    ).json()
    a, b = wait_job(api, first["id"]), wait_job(api, second["id"])
    assert a["status"] == b["status"] == "succeeded"
    assert a["worker"] == b["worker"]
    assert (a["result"]["frames"], a["result"]["width"]) == (37, 48)
    assert (b["result"]["frames"], b["result"]["width"]) == (21, 32)
    # Synchronous mode with one-frame blocks: every iteration updates all frames, one per step.
    assert b["progress"]["total"] == SMALL_REQUEST["num_inference_steps"]
