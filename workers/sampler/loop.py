"""`generate`: the pipeline-compatible text-to-video loop, step by step.

Request checks and text encoding as the pipeline does them → the windows of `shared.frames`
→ per window: latents, timestep matrix, scheduler groups → per iteration: model input (with
`addnoise_condition` re-noise), guided model output for the frames that need it, scheduler steps,
callback → progressive VAE decode of the frames that became final (`incremental`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers import SkyReelsV2DiffusionForcingPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines.skyreels_v2.pipeline_output import SkyReelsV2PipelineOutput
from torch import Tensor

from shared.frames import Window, pipeline_windows, round_num_frames
from workers.sampler.attention import EAGER, LayerFns, compiled_layer_fns
from workers.sampler.decode import decode_latents
from workers.sampler.denoiser import Denoiser
from workers.sampler.incremental import FinalFrames, IncrementalDecoder, pixel_frames
from workers.sampler.memory import MemoryPlan, plan_for_call
from workers.sampler.schedulers import Group, scheduler_groups


@dataclass
class _Job:
    """What stays fixed over a request's windows (the text embeddings only change through callbacks)."""

    pipe: SkyReelsV2DiffusionForcingPipeline
    denoiser: Denoiser
    windows: list[Window]
    batch: int
    height: int
    width: int
    num_frames: int
    generator: torch.Generator | list[torch.Generator] | None
    steps: int
    timesteps_cpu: Tensor
    ar_step: int
    block: int
    addnoise_condition: float
    callback: Any
    tensor_inputs: list[str]
    cond_embeds: Tensor
    uncond_embeds: Tensor | None
    progressive: _Progressive | None = None

    @property
    def is_long(self) -> bool:
        return len(self.windows) > 1


@dataclass
class _Progressive:
    """The decode of frames as they become final, and who is told of them."""

    decoder: IncrementalDecoder
    on_frames: Callable[[FinalFrames], None] | None
    iterations: int = 0
    """Iterations run so far, over all windows."""
    pending: list[int] = field(default_factory=list)
    """Per window-local frame, the iteration after which it is final (its last scheduler update)."""


@dataclass
class _Schedule:
    """One window's diffusion-forcing schedule: rows are iterations, columns latent frames."""

    matrix_cpu: Tensor
    matrix: Tensor
    update: Tensor
    intervals: list[tuple[int, int]]
    groups: list[Group]


# Over 60 lines: the 29 arguments it mirrors from the pipeline's `__call__` and the one `_Job` built from
# them; each step of the work is a function of its own below.
@torch.no_grad()
def generate(
    pipe: SkyReelsV2DiffusionForcingPipeline,
    prompt: str | list[str] | None = None,
    negative_prompt: str | list[str] | None = None,
    height: int = 544,
    width: int = 960,
    num_frames: int = 97,
    num_inference_steps: int = 50,
    guidance_scale: float = 6.0,
    num_videos_per_prompt: int = 1,
    generator: torch.Generator | list[torch.Generator] | None = None,
    prompt_embeds: Tensor | None = None,
    negative_prompt_embeds: Tensor | None = None,
    output_type: str = "np",
    return_dict: bool = True,
    callback_on_step_end: Any = None,
    callback_on_step_end_tensor_inputs: list[str] | None = None,
    max_sequence_length: int = 512,
    overlap_history: int | None = None,
    addnoise_condition: float = 0,
    base_num_frames: int = 97,
    ar_step: int = 0,
    causal_block_size: int | None = None,
    fps: int = 24,
    compile_blocks: bool = False,
    memory_plan: MemoryPlan | None = None,
    progressive_decode: bool = True,
    on_frames: Callable[[FinalFrames], None] | None = None,
) -> SkyReelsV2PipelineOutput | tuple[Any]:
    """Same arguments and result as the pipeline's `__call__` (without `latents`/`attention_kwargs`).
    `compile_blocks` compiles the per-layer code with `torch.compile`, on CUDA only. `memory_plan` says
    how many blocks' keys/values to cache (`workers.sampler.memory`); by default it is decided here from
    the free device memory, as `plan_for_call` with the same arguments decides it.

    With `progressive_decode` (and an `output_type` other than `latent`), latent frames are decoded as
    soon as the schedule has finished them, between the iterations that denoise later blocks, and
    `on_frames` is told each time (`FinalFrames`); the result is the concatenation, equal to a decode of
    the final latents. Should a callback change frames already decoded, the video is decoded again from
    the final latents (what `on_frames` was told then differs from the result)."""
    tensor_inputs = list(callback_on_step_end_tensor_inputs or ["latents"])
    if isinstance(callback_on_step_end, PipelineCallback | MultiPipelineCallbacks):
        tensor_inputs = callback_on_step_end.tensor_inputs
    pipe.check_inputs(
        prompt, negative_prompt, height, width, prompt_embeds, negative_prompt_embeds, tensor_inputs,
        overlap_history, num_frames, base_num_frames,
    )  # fmt: skip
    num_frames = round_num_frames(num_frames)
    _reset_call_state(pipe, guidance_scale)
    cond_embeds, uncond_embeds = _encode_text(
        pipe, prompt, negative_prompt, num_videos_per_prompt, prompt_embeds, negative_prompt_embeds,
        max_sequence_length,
    )  # fmt: skip
    pipe.scheduler.set_timesteps(num_inference_steps, device=pipe._execution_device)
    # Read, never written: the pipeline's `_set_ar_attention` persists the block size in the config.
    block = int(
        causal_block_size if causal_block_size is not None else pipe.transformer.config.num_frame_per_block
    )
    if memory_plan is None:
        memory_plan = plan_for_call(
            pipe, prompt=prompt, prompt_embeds=prompt_embeds, height=height, width=width,
            num_frames=num_frames, base_num_frames=base_num_frames, overlap_history=overlap_history,
            causal_block_size=block,
            guidance_scale=guidance_scale, num_videos_per_prompt=num_videos_per_prompt,
        )  # fmt: skip
    fns: LayerFns = (
        compiled_layer_fns() if compile_blocks and pipe._execution_device.type == "cuda" else EAGER
    )
    denoiser = Denoiser(
        pipe.transformer, cond_embeds, uncond_embeds, [0 if fps == 16 else 1] * cond_embeds.shape[0], block,
        guidance_scale, pipe.do_classifier_free_guidance, fns, memory_plan.cache_blocks,
    )  # fmt: skip
    job = _Job(
        pipe=pipe,
        denoiser=denoiser,
        windows=pipeline_windows(num_frames, base_num_frames, overlap_history, block),
        batch=_batch_size(prompt, prompt_embeds) * num_videos_per_prompt,
        height=height,
        width=width,
        num_frames=num_frames,
        generator=generator,
        steps=num_inference_steps,
        timesteps_cpu=pipe.scheduler.timesteps.cpu(),
        ar_step=ar_step,
        block=block,
        addnoise_condition=addnoise_condition,
        callback=callback_on_step_end,
        tensor_inputs=tensor_inputs,
        cond_embeds=cond_embeds,
        uncond_embeds=uncond_embeds,
    )
    if progressive_decode and output_type != "latent" and IncrementalDecoder.supported(pipe, height, width):
        job.progressive = _Progressive(IncrementalDecoder(pipe, output_type), on_frames)
    progressive = job.progressive
    latents = _denoise_video(job)
    del job, denoiser  # the K/V cache goes before a full VAE decode needs its memory
    pipe._current_timestep = None
    if progressive is not None and progressive.decoder.matches(latents):
        video = progressive.decoder.video()
    else:
        video = decode_latents(pipe, latents, output_type)
    pipe.maybe_free_model_hooks()
    if not return_dict:
        return (video,)
    return SkyReelsV2PipelineOutput(frames=video)


def _encode_text(
    pipe: SkyReelsV2DiffusionForcingPipeline,
    prompt: str | list[str] | None,
    negative_prompt: str | list[str] | None,
    num_videos_per_prompt: int,
    prompt_embeds: Tensor | None,
    negative_prompt_embeds: Tensor | None,
    max_sequence_length: int,
) -> tuple[Tensor, Tensor | None]:
    """Prompt embeddings as the pipeline makes them, in the transformer's dtype."""
    device = pipe._execution_device
    cond, uncond = pipe.encode_prompt(
        prompt=prompt,
        negative_prompt=negative_prompt,
        do_classifier_free_guidance=pipe.do_classifier_free_guidance,
        num_videos_per_prompt=num_videos_per_prompt,
        prompt_embeds=prompt_embeds,
        negative_prompt_embeds=negative_prompt_embeds,
        max_sequence_length=max_sequence_length,
        device=device,
    )
    dtype = pipe.transformer.dtype
    return cond.to(dtype), None if uncond is None else uncond.to(dtype)


def _reset_call_state(pipe: SkyReelsV2DiffusionForcingPipeline, guidance_scale: float) -> None:
    """The per-call attributes `__call__` sets, which callbacks and properties read."""
    pipe._guidance_scale = guidance_scale
    pipe._attention_kwargs = None
    pipe._current_timestep = None
    pipe._interrupt = False


def _batch_size(prompt: str | list[str] | None, prompt_embeds: Tensor | None) -> int:
    if isinstance(prompt, str):
        return 1
    if prompt is not None:
        return len(prompt)
    assert prompt_embeds is not None  # check_inputs demands prompt or prompt_embeds
    return prompt_embeds.shape[0]


def _denoise_video(job: _Job) -> Tensor:
    """Final latents of the whole video: the windows in order, each appended without its overlap."""
    accumulated: Tensor | None = None
    for index, window in enumerate(job.windows):
        latents = _denoise_window(job, index, window, accumulated)
        if accumulated is None:
            accumulated = latents
        else:
            accumulated = torch.cat([accumulated, latents[:, :, window.overlap_frames :]], dim=2)
    assert accumulated is not None  # there is always at least one window
    return accumulated


def _denoise_window(job: _Job, index: int, window: Window, accumulated: Tensor | None) -> Tensor:
    pipe, denoiser = job.pipe, job.denoiser
    tr = pipe.transformer
    latents, window_frames, prefix, prefix_frames = pipe.prepare_latents(
        job.batch,
        tr.config.in_channels,
        job.height,
        job.width,
        job.num_frames,
        torch.float32,
        pipe._execution_device,
        job.generator,
        None,
        video_latents=accumulated,
        base_latent_num_frames=job.windows[0].latent_frames if job.is_long else None,
        causal_block_size=job.block,
        overlap_history_latent_frames=window.overlap_frames if job.is_long else None,
        long_video_iter=index if job.is_long else None,
    )
    # shared.frames and the pipeline compute the same windows; a drift would break exactness silently.
    assert (window_frames, prefix_frames) == (window.latent_frames, window.prefix_frames)
    if prefix_frames > 0:
        latents[:, :, :prefix_frames] = prefix.to(tr.dtype)

    schedule = _window_schedule(job, window)
    pipe._num_timesteps = len(schedule.matrix)
    max_interval = max(e - s for s, e in schedule.intervals)
    denoiser.start_window(window_frames, max_interval, latents.shape[3], latents.shape[4])
    kept = window.overlap_frames if job.is_long else 0  # leading frames the video already holds
    start = 0 if accumulated is None else accumulated.shape[2]
    if job.progressive is not None:
        job.progressive.pending = _final_after(schedule.update, kept)
    for i in range(len(schedule.matrix)):
        if pipe.interrupt:
            continue
        latents = _iteration(job, schedule, latents, i, prefix_frames)
        _decode_final(job, latents, start, kept, i)
    # What is left when the window ends (after an interrupt) is final too: it is kept as it is.
    _decode_final(job, latents, start, kept, None)
    return latents


def _final_after(update: Tensor, kept: int) -> list[int]:
    """For each window frame from `kept` on, the iteration after which the schedule no longer updates it
    (-1 if never)."""
    rows = update.to(torch.bool).cpu()
    steps = torch.arange(rows.shape[0]).unsqueeze(1).expand_as(rows)
    return [int(v) for v in torch.where(rows, steps, -1).amax(dim=0)[kept:]]


def _decode_final(job: _Job, latents: Tensor, start: int, kept: int, i: int | None) -> None:
    """Decode the next window frames that are final after iteration `i` (all that are left when None)
    and tell `on_frames`. Window frame `kept + j` is frame `start + j` of the video."""
    prog = job.progressive
    if prog is None:
        return
    if i is not None:
        prog.iterations += 1
    first = prog.decoder.fed - start
    stop = first
    while stop < len(prog.pending) and (i is None or prog.pending[stop] <= i):
        stop += 1
    if stop == first:
        return
    frames = prog.decoder.feed(latents[:, :, kept + first : kept + stop])
    if prog.on_frames is not None:
        prog.on_frames(
            FinalFrames(start + first, start + stop, frames, pixel_frames(start + first), prog.iterations)
        )


def _window_schedule(job: _Job, window: Window) -> _Schedule:
    pipe = job.pipe
    device = pipe._execution_device
    matrix_cpu, step_index, update, intervals = pipe.generate_timestep_matrix(
        window.latent_frames,
        job.timesteps_cpu,
        window.latent_frames,
        job.ar_step,
        window.prefix_frames,
        job.block,
    )
    groups = scheduler_groups(
        pipe, step_index, update, intervals, job.steps, job.timesteps_cpu, matrix_cpu, device
    )
    return _Schedule(matrix_cpu, matrix_cpu.to(device), update, intervals, groups)


def _iteration(job: _Job, schedule: _Schedule, latents: Tensor, i: int, prefix_frames: int) -> Tensor:
    """One denoising iteration: model output for the updated frames, their scheduler steps, callback."""
    pipe, denoiser = job.pipe, job.denoiser
    t = schedule.matrix[i]
    pipe._current_timestep = t
    s, e = schedule.intervals[i]
    x, ts, ts_cpu, noisy = _model_input(job, schedule, latents, i, prefix_frames)
    upd = schedule.update[i]
    updated = [f for f in range(s, e) if bool(upd[f])]
    if updated:
        noise_pred, out_lo = denoiser(x, ts, ts_cpu, s, updated, noisy, i)
        for g in schedule.groups:
            if bool(upd[g.lo]) and s <= g.lo < e:
                latents[:, :, g.lo : g.hi] = g.scheduler.step(
                    noise_pred[:, :, g.lo - out_lo : g.hi - out_lo],
                    t[g.lo],
                    latents[:, :, g.lo : g.hi],
                    return_dict=False,
                )[0]
                denoiser.latents_changed(g.lo, g.hi)
    if job.callback is not None:
        latents = _run_callback(job, latents, i, t)
    return latents


def _model_input(
    job: _Job, schedule: _Schedule, latents: Tensor, i: int, prefix_frames: int
) -> tuple[Tensor, Tensor, Tensor, range]:
    """The interval's input latents and timesteps (device and host), re-noising the carried-over prefix
    with `addnoise_condition` as the pipeline does, and the absolute frames it re-noised."""
    s, e = schedule.intervals[i]
    dtype = job.pipe.transformer.dtype
    x = latents[:, :, s:e].to(dtype).clone()
    ts = schedule.matrix[i].expand(latents.shape[0], -1)[:, s:e].clone()
    ts_cpu = schedule.matrix_cpu[i, s:e].clone()
    noisy = range(0)
    if job.addnoise_condition > 0 and s < prefix_frames:
        # Same slicing as the pipeline: [s:prefix_frames] of the window-local tensors.
        nf = 0.001 * job.addnoise_condition
        x[:, :, s:prefix_frames] = (
            x[:, :, s:prefix_frames] * (1.0 - nf) + torch.randn_like(x[:, :, s:prefix_frames]) * nf
        )
        ts[:, s:prefix_frames] = job.addnoise_condition
        ts_cpu[s:prefix_frames] = int(job.addnoise_condition)
        noisy = range(2 * s, s + prefix_frames)  # absolute frames of that window-local slice
    return x, ts, ts_cpu, noisy


def _run_callback(job: _Job, latents: Tensor, i: int, t: Tensor) -> Tensor:
    """`callback_on_step_end`, telling the denoiser what it changed so no stale cache is reused."""
    version = latents._version
    values = {
        "latents": latents,
        "prompt_embeds": job.cond_embeds,
        "negative_prompt_embeds": job.uncond_embeds,
    }
    outputs = job.callback(job.pipe, i, t, {k: values[k] for k in job.tensor_inputs})
    new_latents = outputs.pop("latents", latents)
    new_pe = outputs.pop("prompt_embeds", job.cond_embeds)
    new_npe = outputs.pop("negative_prompt_embeds", job.uncond_embeds)
    # In-place edits bump the tensor's version counter; replacements are new objects.
    if new_latents is not latents or latents._version != version:
        job.denoiser.all_latents_changed()
    if new_pe is not job.cond_embeds or new_npe is not job.uncond_embeds:
        job.cond_embeds, job.uncond_embeds = new_pe, new_npe
        job.denoiser.set_text(new_pe, new_npe)
    return new_latents
