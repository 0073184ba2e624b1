"""Runs one job: claim it, generate, encode, upload, and record the outcome.

Kept apart from Celery so the job path reads top to bottom; `workers.tasks` only wires it to a queue.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from diffusers import SkyReelsV2DiffusionForcingPipeline

from shared.errors import ErrorCode, InvalidInput, InvalidTransition, JobTimeout, ReelForgeError
from shared.fleet import Fleet, Sample, TaskOutcome
from shared.frames import plan_windows
from shared.jobs import JobRecord
from shared.jobstore import JobStore
from shared.schemas import InferenceRequest, JobError, Timings
from shared.settings import Settings
from shared.states import JobPhase, JobStatus
from shared.storage import Storage
from workers.pipeline import PipelineHolder
from workers.preview import PreviewPublisher
from workers.results import publish, sidecar

log = logging.getLogger(__name__)


def count_iterations(pipe: SkyReelsV2DiffusionForcingPipeline, req: InferenceRequest) -> int:
    """Denoising iterations the job will run, over all long-video windows."""
    pipe.scheduler.set_timesteps(req.num_inference_steps, device="cpu")
    timesteps = pipe.scheduler.timesteps
    total = 0
    for w in plan_windows(req.num_frames, req.base_num_frames, req.overlap_history, req.causal_block_size):
        matrix = pipe.generate_timestep_matrix(
            w.latent_frames, timesteps, w.latent_frames, req.ar_step, w.prefix_frames, req.causal_block_size
        )[0]
        total += len(matrix)
    return total


def pipeline_kwargs(
    pipe: SkyReelsV2DiffusionForcingPipeline, req: InferenceRequest, on_step: Callable[[], None]
) -> dict[str, Any]:
    """The pipeline's keyword arguments for `req`, with a fresh seeded generator."""
    device = pipe._execution_device
    return {
        "prompt": req.prompt,
        "negative_prompt": req.negative_prompt,
        "height": req.height,
        "width": req.width,
        "num_frames": req.num_frames,
        "num_inference_steps": req.num_inference_steps,
        "guidance_scale": req.guidance_scale,
        "generator": torch.Generator(device=device).manual_seed(req.seed),
        "output_type": "np",
        "overlap_history": req.overlap_history,
        "addnoise_condition": req.addnoise_condition,
        "base_num_frames": req.base_num_frames,
        "ar_step": req.ar_step,
        "causal_block_size": req.causal_block_size,
        "fps": req.fps,
        "callback_on_step_end": lambda _pipe, _i, _t, _kw: _step(on_step),
    }


def render_frames(
    pipe: SkyReelsV2DiffusionForcingPipeline,
    req: InferenceRequest,
    sampler: str,
    on_step: Callable[[], None],
    compile_blocks: bool = False,
    on_plan: Callable[[dict[str, Any]], None] = lambda _: None,
    on_frames: Callable[[np.ndarray], None] | None = None,
) -> np.ndarray:
    """(T, H, W, 3) float frames in [0, 1]. Seeds both the generator and the global RNG (which the
    pipeline draws `addnoise_condition` noise from), so a request's video does not depend on history.
    With the fast sampler, `on_plan` is told its key/value cache decision before it starts, and
    `on_frames` each run of frames as soon as it is decoded (they make the returned frames, in order)."""
    torch.manual_seed(req.seed)
    kwargs = pipeline_kwargs(pipe, req, on_step)
    out: Any
    if sampler == "fast":
        import workers.sampler as fast_sampler
        from workers.sampler.memory import plan_for_call

        plan = plan_for_call(pipe, **kwargs)
        on_plan(plan.record())
        told = None if on_frames is None else _first_video(on_frames)
        out = fast_sampler.generate(
            pipe, **kwargs, compile_blocks=compile_blocks, memory_plan=plan, on_frames=told
        )
    else:
        out = pipe(**kwargs)
    return np.asarray(out.frames[0])


def _step(on_step: Callable[[], None]) -> dict[str, Any]:
    on_step()
    return {}


def _first_video(on_frames: Callable[[np.ndarray], None]) -> Callable[[Any], None]:
    """The sampler's `FinalFrames` of a one-video request, as its (T, H, W, 3) frames."""
    return lambda final: on_frames(np.asarray(final.frames[0]))


class JobRunner:
    def __init__(
        self, settings: Settings, store: JobStore, storage: Storage, holder: PipelineHolder, worker: str
    ) -> None:
        self.settings = settings
        self.store = store
        self.fleet: Fleet = store.fleet
        self.storage = storage
        self.holder = holder
        self.worker = worker
        self.current_job: str | None = None

    def warm(self, version: str) -> None:
        """Load `version` if it is not loaded yet, recording the cold start."""
        loaded_at = self.holder.loaded_at
        self.holder.get(version)
        if self.holder.loaded_at != loaded_at and self.holder.cold_start_s is not None:
            self.fleet.record_cold_start(version, self.settings.worker_queue, self.holder.cold_start_s)

    def run(self, job_id: str) -> TaskOutcome:
        """What was done with the job. Raises InvalidTransition when another live worker holds it
        (the caller retries later)."""
        job = self.store.start(job_id, self.worker)
        if job is None:
            log.info("job %s already finished; redelivery ignored", job_id)
            return TaskOutcome.DROPPED
        if job.status != JobStatus.RUNNING:
            log.warning("job %s ended %s before running: %s", job_id, job.status, job.error)
            if job.status == JobStatus.FAILED and job.error:
                self._sample(job_id, str(job.request.get("model_version")), "failed", job.error.code)
            return TaskOutcome.ENDED
        self.current_job = job_id
        out_of_memory: str | None = None
        try:
            req = InferenceRequest.model_validate(job.request)
            self._execute(job, req)
        except InvalidTransition as exc:
            log.warning("job %s left this worker: %s", job_id, exc)
            return TaskOutcome.STOPPED
        except ReelForgeError as exc:
            self._fail(job, exc.code, exc.message)
        except torch.cuda.OutOfMemoryError as exc:
            out_of_memory = f"GPU out of memory: {exc}"
        except Exception as exc:
            log.exception("job %s failed", job_id)
            self._fail(job, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        finally:
            self.current_job = None
        if out_of_memory is not None:
            # Outside the handler, so the traceback no longer pins the failed step's tensors: free
            # them for real before the next job.
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self._fail(job, ErrorCode.OUT_OF_MEMORY, out_of_memory)
        return TaskOutcome.RAN

    def _execute(self, job: JobRecord, req: InferenceRequest) -> None:
        """Load, denoise, publish, then move the job to succeeded (only once its upload is confirmed)."""
        if self.holder.version != req.model_version:
            self.store.phase(job.id, self.worker, JobPhase.LOADING)
        self.warm(req.model_version)
        pipe = self.holder.get(req.model_version)
        # The deadline and the request time start once the model is loaded: a cold start is
        # measured apart (cold_start_s) and does not eat into the job's execution time.
        started = time.perf_counter()
        frames, timings = self._denoise(job, req, pipe, started)
        # The sidecar's timings end here: its upload cannot wait for its own upload time.
        meta = sidecar(job, req, self.holder.revision, self.settings.sampler, timings)
        result, encode_s, upload_s = publish(
            self.storage,
            job,
            req,
            frames,
            meta,
            lambda phase: self.store.phase(job.id, self.worker, phase),
            self.settings.storage_retry_s,
        )
        request_ms = (time.perf_counter() - started) * 1000
        timings = timings.model_copy(
            update={
                "encode_s": round(encode_s, 3),
                "upload_s": round(upload_s, 3),
                "video_s": round(request_ms / 1000, 3),
            }
        )
        self.store.finish(job.id, self.worker, JobStatus.SUCCEEDED, result=result, timings=timings)
        model_ms = (timings.model_s or 0) * 1000
        self._sample(job.id, req.model_version, "succeeded", None, model_ms=model_ms, request_ms=request_ms)

    def _denoise(
        self, job: JobRecord, req: InferenceRequest, pipe: SkyReelsV2DiffusionForcingPipeline, started: float
    ) -> tuple[np.ndarray, Timings]:
        """The frames, with progress and the deadline checked at every iteration; the timings so far."""
        timeout_s = job.timeout_s or self.settings.execution_timeout_s

        def check_deadline() -> None:
            if time.perf_counter() - started > timeout_s:
                raise JobTimeout(f"ran past its execution deadline of {timeout_s:g}s")

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        total = count_iterations(pipe, req)
        done = 0

        def on_step() -> None:
            nonlocal done
            done += 1
            check_deadline()
            # Raises InvalidTransition once the job was canceled: generation stops at this iteration.
            self.store.progress(job.id, self.worker, done, total)
            if done == total:  # the sampler decodes the latents next
                self.store.phase(job.id, self.worker, JobPhase.DECODING)

        plan: dict[str, Any] = {}
        preview = self._preview(job, req, started)
        try:
            frames = render_frames(
                pipe, req, self.settings.sampler, on_step, self.settings.compile_blocks, plan.update,
                None if preview is None else preview.add,
            )  # fmt: skip
        finally:
            if preview is not None:
                preview.close()
        check_deadline()
        if frames.shape[0] != req.output_num_frames:
            raise InvalidInput(
                f"num_frames: produced {frames.shape[0]} frames, expected {req.output_num_frames}"
            )
        model_s = round(time.perf_counter() - t0, 3)
        update: dict[str, Any] = {"model_s": model_s, "memory_plan": plan or None}
        if preview is not None:
            for name in ("first_frames_s", "first_preview_s"):
                value = getattr(preview, name)
                update[name] = None if value is None else round(value, 3)
        return frames, job.timings.model_copy(update=update)

    def _preview(self, job: JobRecord, req: InferenceRequest, started: float) -> PreviewPublisher | None:
        """The job's growing preview, where the settings ask for one and the sampler decodes as it goes."""
        if self.settings.preview_interval_s is None or self.settings.sampler != "fast":
            return None
        return PreviewPublisher(
            self.storage, job.id, req.fps, self.settings.preview_interval_s,
            lambda key, frames: self.store.preview(job.id, self.worker, key, frames),
            started,  # its times count from the loaded model, as the job's other timings do
        )  # fmt: skip

    def _fail(self, job: JobRecord, code: ErrorCode, message: str) -> None:
        try:
            self.store.finish(
                job.id, self.worker, JobStatus.FAILED, error=JobError(code=code, message=message)
            )
        except InvalidTransition as exc:
            log.warning("job %s: not marking failed: %s", job.id, exc)
            return
        self._sample(job.id, str(job.request.get("model_version")), "failed", code)

    def _sample(self, job_id: str, version: str, status: str, code: ErrorCode | None, **ms: float) -> None:
        # Peak GPU memory only where this job ran on the GPU (reset at its start); none otherwise.
        ran = bool(ms) or code not in (None, ErrorCode.WORKER_LOST)
        peak = int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() and ran else None
        sample = Sample.model_validate(
            {
                "job_id": job_id,
                "status": status,
                "code": code,
                "peak_gpu_memory_bytes": peak,
                "at": time.time(),
            }
            | {k: round(v, 1) for k, v in ms.items()}
        )
        self.fleet.record(version, self.settings.worker_queue, sample)
