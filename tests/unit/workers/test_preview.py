"""A job's growing preview: uploaded and on the job record while it runs, and a final video whose
frames equal a full decode of its final latents (the sidecar's `frames_sha256`)."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import av
import numpy as np
import redis
import torch

from shared import keys
from shared.errors import InvalidTransition
from shared.jobs import JobRecord
from shared.jobstore import JobStore
from shared.schemas import InferenceRequest
from shared.settings import Settings
from shared.states import JobStatus
from shared.storage import LocalStorage, preview_key
from shared.views import render_job
from workers.encoding import to_uint8
from workers.pipeline import PipelineHolder
from workers.preview import PreviewPublisher
from workers.runner import JobRunner, pipeline_kwargs
from workers.sampler import generate

# 2 causal blocks of 5 latent frames; with ar_step 5 the second finishes 5 iterations after the first.
REQUEST = {"prompt": "a red kite over the sea", "model_version": "tiny-random", "width": 32, "height": 16,
           "num_frames": 37, "causal_block_size": 5, "ar_step": 5, "seed": 3,
           "num_inference_steps": 8}  # fmt: skip


def _frames_in(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_preview_before_the_end_and_final_frames_equal_a_full_decode(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = Settings(storage_dir=tmp_path, preview_interval_s=0)
    store, storage, holder = (
        JobStore(redis_client, ttl_s=60),
        LocalStorage(settings),
        PipelineHolder("cpu", None),
    )
    req = InferenceRequest.model_validate(REQUEST)
    store.create(JobRecord(id="j", owner="o", request=req.model_dump(mode="json"), gpu_type="CPU",
                           region="local", queue="q"))  # fmt: skip
    JobRunner(settings, store, storage, holder, "w").run("j")

    job = store.require("j")
    assert job.status == JobStatus.SUCCEEDED and job.preview is not None
    records = [JobRecord.model_validate_json(f["job"]) for _, f in redis_client.xrange(keys.job_events("j"))]
    previews = [r for r in records if r.preview is not None and r.status == JobStatus.RUNNING]
    # A preview was on the job while it still ran. When it landed relative to the last iteration is up
    # to the upload thread and the machine's load; that the first frames were decoded before the last
    # iteration is what first_frames_s < model_s below shows.
    assert previews and previews[0].preview.frames == 17  # type: ignore[union-attr]  # the first block
    assert _frames_in(tmp_path / preview_key("j")) == job.preview.frames
    t = job.timings
    assert t.first_frames_s is not None and t.first_preview_s is not None and t.video_s is not None
    assert t.first_frames_s < t.model_s < t.video_s and t.first_preview_s < t.video_s  # type: ignore[operator]
    view = render_job(job, settings, storage)
    assert view.preview_url is not None and preview_key("j") in view.preview_url
    assert view.preview_frames == job.preview.frames

    pipe = holder.get(req.model_version)
    torch.manual_seed(req.seed)
    full = generate(pipe, **pipeline_kwargs(pipe, req, lambda: None), progressive_decode=False)
    digest = hashlib.sha256(to_uint8(np.asarray(full.frames[0])).tobytes()).hexdigest()
    sidecar = json.loads((tmp_path / "videos/j.json").read_text())
    assert sidecar["output"]["frames_sha256"] == digest


class _Storage:
    def __init__(self) -> None:
        self.uploads: list[int] = []
        self.uploading = threading.Event()
        self.release = threading.Event()

    def put_file(self, key: str, path: Path, content_type: str) -> int:
        self.uploads.append(_frames_in(path))
        self.uploading.set()
        self.release.wait(5)
        return path.stat().st_size


def test_uploads_are_spaced_and_close_drops_what_is_not_uploaded() -> None:
    storage, recorded = _Storage(), []
    frames = np.zeros((5, 16, 16, 3), np.float32)
    preview = PreviewPublisher(storage, "j", 8, 3600, lambda key, n: recorded.append(n))  # type: ignore[arg-type]
    preview.add(frames[:1])
    assert storage.uploading.wait(5)
    preview.add(frames[1:])  # while the first upload is under way
    storage.release.set()
    preview.close()  # the second would wait an hour
    assert storage.uploads == recorded == [1]
    assert preview.first_frames_s is not None and preview.first_preview_s is not None


def test_a_job_no_longer_running_here_stops_the_preview() -> None:
    storage = _Storage()
    storage.release.set()

    def record(key: str, frames: int) -> None:
        raise InvalidTransition("canceled")

    preview = PreviewPublisher(storage, "j", 8, 0, record)  # type: ignore[arg-type]
    preview.add(np.zeros((1, 16, 16, 3), np.float32))
    preview._thread.join(5)
    assert not preview._thread.is_alive() and preview.first_preview_s is None
    preview.add(np.zeros((4, 16, 16, 3), np.float32))
    preview.close()
    assert storage.uploads == [1]
