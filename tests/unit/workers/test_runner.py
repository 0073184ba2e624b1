"""The worker's job code in-process, on the real tiny-random pipeline (no queue involved), and what it
does with a task whose job cannot run."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import redis

from shared.errors import ErrorCode
from shared.fleet import TaskOutcome
from shared.jobs import JobRecord
from shared.jobstore import JobStore
from shared.schemas import InferenceRequest
from shared.settings import Settings
from shared.states import JobStatus
from workers.pipeline import PipelineHolder
from workers.runner import JobRunner, count_iterations, render_frames

BASE = {"prompt": "a red kite over the sea", "model_version": "tiny-random", "width": 32, "height": 16}
A = InferenceRequest.model_validate(BASE | {"num_frames": 37, "causal_block_size": 5, "ar_step": 5, "seed": 1,
                                           "num_inference_steps": 3})  # fmt: skip
B = InferenceRequest.model_validate(BASE | {"num_frames": 21, "causal_block_size": 1, "ar_step": 0, "seed": 2,
                                           "num_inference_steps": 3})  # fmt: skip


@pytest.fixture(scope="module")
def holder() -> PipelineHolder:
    return PipelineHolder("cpu", None)


def run(holder: PipelineHolder, req: InferenceRequest, sampler: str = "fast") -> tuple[np.ndarray, int]:
    steps = 0

    def on_step() -> None:
        nonlocal steps
        steps += 1

    pipe = holder.get(req.model_version)
    return render_frames(pipe, req, sampler, on_step), steps


@pytest.mark.parametrize("sampler", ["fast", "pipeline"])
def test_two_requests_in_a_row_give_what_each_gives_alone(holder: PipelineHolder, sampler: str) -> None:
    a_then, _ = run(holder, A, sampler)
    b_after_a, _ = run(holder, B, sampler)
    fresh = PipelineHolder("cpu", None)
    b_alone, _ = run(fresh, B, sampler)
    a_after_b, _ = run(fresh, A, sampler)
    np.testing.assert_array_equal(b_after_a, b_alone)
    np.testing.assert_array_equal(a_then, a_after_b)
    assert not np.array_equal(a_then[:21], b_alone)


@pytest.mark.parametrize("req", [A, B], ids=["async-blocks", "sync"])
def test_worker_default_sampler_matches_the_pipeline(holder: PipelineHolder, req: InferenceRequest) -> None:
    fast, fast_steps = run(holder, req, "fast")
    plain, plain_steps = run(holder, req, "pipeline")
    assert fast_steps == plain_steps
    assert np.abs(fast - plain).max() <= 1e-3


def test_block_size_does_not_persist_into_the_next_request(holder: PipelineHolder) -> None:
    run(holder, A, "pipeline")
    pipe = holder.get("tiny-random")
    assert pipe.transformer.config.num_frame_per_block == holder.default_block_size == 1


@pytest.mark.parametrize("req", [A, B], ids=["async-blocks", "sync"])
def test_progress_total_is_the_number_of_callbacks(holder: PipelineHolder, req: InferenceRequest) -> None:
    frames, steps = run(holder, req)
    assert steps == count_iterations(holder.get(req.model_version), req)
    assert frames.shape == (req.output_num_frames, req.height, req.width, 3)


def test_long_video_windows_are_counted_and_stitched(holder: PipelineHolder) -> None:
    req = InferenceRequest.model_validate(
        BASE
        | {
            "num_frames": 57,
            "base_num_frames": 37,
            "overlap_history": 17,
            "causal_block_size": 5,
            "ar_step": 5,
            "num_inference_steps": 3,
        }
    )
    frames, steps = run(holder, req)
    assert frames.shape[0] == 57
    assert steps == count_iterations(holder.get("tiny-random"), req) > 0


def test_a_task_for_an_ended_or_overdue_job_runs_nothing(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client, ttl_s=60)
    runner = JobRunner(Settings(), store, storage=None, holder=None, worker="w")  # type: ignore[arg-type]
    for job_id in ("canceled", "overdue"):
        store.create(JobRecord(id=job_id, owner="o", request=BASE, gpu_type="CPU", region="local", queue="q"))
    store.end("canceled", JobStatus.CANCELED, ErrorCode.CANCELED, "by user")
    store.update("overdue", lambda j: setattr(j, "start_deadline_at", j.created_at - timedelta(seconds=1)))
    assert runner.run("canceled") == TaskOutcome.DROPPED
    assert runner.run("overdue") == TaskOutcome.ENDED
    assert store.require("overdue").status == JobStatus.EXPIRED
