"""What a finished job leaves in storage: the MP4, a poster JPEG (first frame) and a JSON sidecar
with everything needed to reproduce the video. Keys are deterministic per job, so a redelivered job
overwrites rather than duplicates."""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from shared.backoff import backoff_s
from shared.errors import StorageError
from shared.jobs import JobRecord
from shared.schemas import InferenceRequest, Timings, VideoResult
from shared.states import JobPhase
from shared.storage import Storage, video_key
from workers.encoding import encode_mp4, to_uint8

log = logging.getLogger(__name__)


def poster_key(job_id: str) -> str:
    return f"videos/{job_id}.jpg"


def sidecar_key(job_id: str) -> str:
    return f"videos/{job_id}.json"


def versions() -> dict[str, str]:
    return {
        "reelforge": version("reelforge"),
        "diffusers": version("diffusers"),
        "torch": version("torch"),
        "transformers": version("transformers"),
        "python": platform.python_version(),
    }


def sidecar(
    job: JobRecord, req: InferenceRequest, revision: str, sampler: str, timings: Timings
) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "request": req.model_dump(mode="json"),
        "seed": req.seed,
        "model": req.model,
        "model_version": req.model_version,
        "model_revision": revision,
        "sampler": sampler,
        "versions": versions(),
        "gpu_type": job.gpu_type,
        "region": job.region,
        "worker": job.worker,
        "attempt": job.attempts,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "timings": timings.model_dump(),
        "output": {"frames": None, "fps": req.fps, "width": req.width, "height": req.height},
    }


def put_with_retry(storage: Storage, key: str, path: Path, content_type: str, retry_s: float) -> int:
    """Upload, retrying with backoff (1 s doubling, at most 30 s apart) for `retry_s` while storage
    refuses or does not answer: the GPU work is done and the file is on local disk, so an outage of a
    few minutes costs time, not the job. Past it, StorageError (`storage_unavailable`)."""
    deadline = time.monotonic() + retry_s
    failures = 0
    while True:
        try:
            return storage.put_file(key, path, content_type)
        except StorageError as exc:
            failures += 1
            delay = backoff_s(failures, 1.0, 30.0)
            if time.monotonic() + delay > deadline:
                raise StorageError(f"{exc.message}; gave up after retrying for {retry_s:g}s") from exc
            log.warning("upload of %s failed (%s); retrying in %.0fs", key, exc.message, delay)
            time.sleep(delay)


def publish(
    storage: Storage,
    job: JobRecord,
    req: InferenceRequest,
    frames: np.ndarray,
    meta: dict[str, Any],
    enter: Callable[[JobPhase], object] = lambda _: None,
    retry_s: float = 0.0,
) -> tuple[VideoResult, float, float]:
    """Encode and upload all three; returns the result, encode seconds and upload seconds. `enter` is
    told each phase as it begins (encoding, uploading)."""
    enter(JobPhase.ENCODING)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reelforge-") as tmp:
        video, poster, side = Path(tmp) / "video.mp4", Path(tmp) / "poster.jpg", Path(tmp) / "sidecar.json"
        encode_mp4(frames, req.fps, video)
        Image.fromarray(to_uint8(frames[0])).save(poster, "JPEG", quality=90)
        t1 = time.perf_counter()
        enter(JobPhase.UPLOADING)
        size = put_with_retry(storage, video_key(job.id), video, "video/mp4", retry_s)
        put_with_retry(storage, poster_key(job.id), poster, "image/jpeg", retry_s)
        digest = hashlib.sha256(to_uint8(frames).tobytes()).hexdigest()
        output = {"frames": int(frames.shape[0]), "bytes": size, "frames_sha256": digest}
        meta = meta | {"output": meta["output"] | output}
        side.write_text(json.dumps(meta, indent=2))
        put_with_retry(storage, sidecar_key(job.id), side, "application/json", retry_s)
        t2 = time.perf_counter()
    result = VideoResult(
        storage_key=video_key(job.id),
        poster_key=poster_key(job.id),
        sidecar_key=sidecar_key(job.id),
        bytes=size,
        frames=int(frames.shape[0]),
        fps=req.fps,
        width=req.width,
        height=req.height,
    )
    return result, t1 - t0, t2 - t1
