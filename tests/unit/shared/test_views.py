"""The job view's links: signed when rendered, re-signed for webhook retries, withheld past retention."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

import shared.storage
from shared.jobs import JobRecord, now
from shared.schemas import Preview, VideoResult
from shared.settings import Settings
from shared.states import JobStatus
from shared.storage import LocalStorage
from shared.views import render_job, resign_links


def finished_job(ended_days_ago: float = 0) -> JobRecord:
    request = {"model_version": "tiny-random"}
    job = JobRecord(id="j", owner="o", request=request, gpu_type="CPU", region="local", queue="q")
    job.status, job.finished_at = JobStatus.SUCCEEDED, now() - timedelta(days=ended_days_ago)
    files = {"storage_key": "videos/j.mp4", "poster_key": "videos/j.jpg"}
    job.result = VideoResult(**files, bytes=1, frames=17, fps=24, width=32, height=16)
    job.preview = Preview(storage_key="videos/j.preview.mp4", frames=5, updated_at=job.finished_at)
    return job


def test_links_are_signed_at_render_and_resigned_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(storage_dir=tmp_path, presign_expiry_s=60)
    storage = LocalStorage(settings)
    view = render_job(finished_job(), settings, storage).model_dump(mode="json")
    assert view["links"]["video"] == view["result"]["video_url"]
    assert "videos/j.jpg" in view["result"]["poster_url"] and view["result"]["sidecar_url"] is None
    later = time.time() + 30  # links are signed to the second: re-sign them on a later clock
    monkeypatch.setattr(shared.storage, "time", SimpleNamespace(time=lambda: later))
    fresh = resign_links(view, storage)
    assert fresh["result"]["video_url"] != view["result"]["video_url"]
    assert fresh["result"]["video_url_expires_at"] > view["result"]["video_url_expires_at"]
    assert fresh["links"]["video"] == fresh["result"]["video_url"]
    assert fresh["result"]["storage_key"] == view["result"]["storage_key"] and fresh["id"] == view["id"]
    assert "videos/j.preview.mp4" in view["preview_url"] and view["preview_frames"] == 5
    assert fresh["preview_url"] != view["preview_url"] and "videos/j.preview.mp4" in fresh["preview_url"]


def test_no_links_past_retention(tmp_path: Path) -> None:
    settings = Settings(storage_dir=tmp_path, retention_days=30)
    view = render_job(finished_job(ended_days_ago=31), settings, LocalStorage(settings))
    assert view.result is not None and view.result.video_url is None and view.links.video is None
    assert view.result.retained_until is not None and view.result.retained_until < now()
    assert view.preview_url is None
    assert resign_links(view.model_dump(mode="json"), LocalStorage(settings))["result"]["video_url"] is None
