"""How much earlier a job's first preview frames are there than its final video, on the worker's job
path (`JobRunner`: real Redis, local storage, the tiny-random model or any loaded version).

    python -m bench.preview                      # CPU, tiny-random, 128x128, 57 frames, 3 causal blocks
    python -m bench.preview --width 960 --height 544 --version <real version>   # on a GPU worker

Runs the same request with the preview on (`REELFORGE_PREVIEW_INTERVAL_S=0`, every block uploaded) and
off, alternated, `--runs` times each (the fastest kept), and prints the job's timings: first decoded
frames, first preview on the record, model time (the last frame decoded) and the final video uploaded,
all from the loaded model. With the preview off the sampler still decodes block by block.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import redis

from scheduler.dev.stack import Stack, free_port
from shared.jobs import JobRecord
from shared.jobstore import JobStore
from shared.schemas import InferenceRequest
from shared.settings import Settings
from shared.storage import LocalStorage
from workers.pipeline import PipelineHolder
from workers.runner import JobRunner


def run_job(client: redis.Redis, holder: PipelineHolder, req: InferenceRequest, job_id: str,
            interval_s: float | None, storage_dir: Path) -> dict[str, Any]:  # fmt: skip
    settings = Settings(storage_dir=storage_dir, preview_interval_s=interval_s)
    store = JobStore(client, ttl_s=600)
    store.create(JobRecord(id=job_id, owner="bench", request=req.model_dump(mode="json"), gpu_type="CPU",
                           region="local", queue="bench"))  # fmt: skip
    JobRunner(settings, store, LocalStorage(settings), holder, "bench").run(job_id)
    job = store.require(job_id)
    assert job.status == "succeeded", job.error
    return job.timings.model_dump(exclude={"memory_plan"}) | {
        "preview_frames": job.preview.frames if job.preview else 0,
        "frames": job.result.frames if job.result else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", default="tiny-random")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--frames", type=int, default=57)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3, help="each variant; the fastest video_s is shown")
    args = parser.parse_args()
    req = InferenceRequest.model_validate(
        {
            "prompt": "a red kite over the sea",
            "model_version": args.version,
            "width": args.width,
            "height": args.height,
            "num_frames": args.frames,
            "causal_block_size": 5,
            "ar_step": 5,
            "num_inference_steps": args.steps,
            "seed": 1,
        }
    )
    holder = PipelineHolder(args.device, None)
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp) / "redis")
        try:
            client = redis.Redis.from_url(
                stack.start_redis(free_port(), persist=False), decode_responses=True
            )
            run_job(client, holder, req, "warm-up", None, Path(tmp) / "files")
            rows = {}
            for attempt in range(args.runs):  # alternated, so drift hits both alike
                for name, interval in (("preview off", None), ("preview every block", 0.0)):
                    timings = run_job(client, holder, req, f"{name}-{attempt}", interval, Path(tmp) / "files")
                    if name not in rows or timings["video_s"] < rows[name]["video_s"]:
                        rows[name] = timings
        finally:
            stack.stop()
    shape = req.model_dump(
        include={"width", "height", "num_frames", "num_inference_steps", "ar_step", "causal_block_size"}
    )
    print(json.dumps({"request": shape, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
