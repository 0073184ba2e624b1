"""A faster, exact re-implementation of `SkyReelsV2DiffusionForcingPipeline.__call__` (text to video).

`generate(pipe, **kwargs)` takes the pipeline's own keyword arguments and computes the same function;
the speed comes only from not computing what cannot change the result:

* cond and uncond run as one batch, and the text's cross-attention keys/values are projected once;
* with a block-causal model (`causal_block_size > 1`) a forward covers only the blocks from the first
  whose input changed since it was last computed up to the last block the scheduler updates, with the
  earlier blocks' keys/values from a per-layer cache (`workers.sampler.denoiser`), and attention runs per
  query block over its allowed key prefix instead of under a dense mask (`workers.sampler.attention`);
* frames that share their whole schedule share one UniPC scheduler, stepped on all of them at once
  (the scheduler's arithmetic is elementwise), with its start index set from the host-side schedule
  instead of a device lookup.

Random draws (the generator's latents, the global RNG's `addnoise_condition` noise) happen at the same
points, with the same shapes and order, as in the pipeline, so both give the same video.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import SkyReelsV2DiffusionForcingPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines.skyreels_v2.pipeline_output import SkyReelsV2PipelineOutput
from torch import Tensor

from workers.sampler.attention import EAGER, LayerFns, compiled_layer_fns
from workers.sampler.denoiser import Denoiser


@dataclass
class _Group:
    """Contiguous frames [lo, hi) with identical schedules, stepped by one scheduler."""

    lo: int
    hi: int
    scheduler: Any


def _scheduler_groups(
    pipe: SkyReelsV2DiffusionForcingPipeline,
    step_index: Tensor,
    update: Tensor,
    intervals: list[tuple[int, int]],
    steps: int,
    timesteps_cpu: Tensor,
    step_matrix_cpu: Tensor,
    device: torch.device,
) -> list[_Group]:
    # Frames whose timestep, update and in-interval columns agree over every iteration receive the same
    # step calls with the same timesteps, so a per-frame scheduler state is identical across them.
    frames = update.shape[1]
    pos = torch.arange(frames)
    inside = torch.stack([(pos >= s) & (pos < e) for s, e in intervals])
    columns = torch.cat([step_index, update.long(), inside.long()], dim=0)
    groups: list[_Group] = []
    lo = 0
    for f in range(1, frames + 1):
        if f < frames and torch.equal(columns[:, f], columns[:, lo]):
            continue
        updated_at = update[:, lo].nonzero()
        if len(updated_at) > 0:
            scheduler = deepcopy(pipe.scheduler)
            scheduler.set_timesteps(steps, device=device)
            first_t = step_matrix_cpu[int(updated_at[0]), lo]
            scheduler.set_begin_index(scheduler.index_for_timestep(first_t, timesteps_cpu))
            groups.append(_Group(lo, f, scheduler))
        lo = f
    return groups


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
) -> SkyReelsV2PipelineOutput | tuple[Any]:
    """Same arguments and result as the pipeline's `__call__` (without `latents`/`attention_kwargs`).
    `compile_blocks` compiles the per-layer code with `torch.compile`, on CUDA only."""
    tensor_inputs = list(callback_on_step_end_tensor_inputs or ["latents"])
    if isinstance(callback_on_step_end, PipelineCallback | MultiPipelineCallbacks):
        tensor_inputs = callback_on_step_end.tensor_inputs
    pipe.check_inputs(
        prompt,
        negative_prompt,
        height,
        width,
        prompt_embeds,
        negative_prompt_embeds,
        tensor_inputs,
        overlap_history,
        num_frames,
        base_num_frames,
    )
    vae_t = pipe.vae_scale_factor_temporal
    if num_frames % vae_t != 1:
        num_frames = num_frames // vae_t * vae_t + 1
    num_frames = max(num_frames, 1)

    pipe._guidance_scale = guidance_scale
    pipe._attention_kwargs = None
    pipe._current_timestep = None
    pipe._interrupt = False
    device = pipe._execution_device
    cfg = pipe.do_classifier_free_guidance
    if isinstance(prompt, str):
        batch_size = 1
    elif prompt is not None:
        batch_size = len(prompt)
    else:
        assert prompt_embeds is not None  # check_inputs demands prompt or prompt_embeds
        batch_size = prompt_embeds.shape[0]

    cond_embeds, uncond_embeds = pipe.encode_prompt(
        prompt=prompt,
        negative_prompt=negative_prompt,
        do_classifier_free_guidance=cfg,
        num_videos_per_prompt=num_videos_per_prompt,
        prompt_embeds=prompt_embeds,
        negative_prompt_embeds=negative_prompt_embeds,
        max_sequence_length=max_sequence_length,
        device=device,
    )
    tr = pipe.transformer
    dtype = tr.dtype
    cond_embeds = cond_embeds.to(dtype)
    if uncond_embeds is not None:
        uncond_embeds = uncond_embeds.to(dtype)

    pipe.scheduler.set_timesteps(num_inference_steps, device=device)
    timesteps_cpu = pipe.scheduler.timesteps.cpu()
    # Read, never written: the pipeline's `_set_ar_attention` persists the block size in the config.
    block = int(causal_block_size if causal_block_size is not None else tr.config.num_frame_per_block)
    fps_ids = [0 if fps == 16 else 1] * cond_embeds.shape[0]
    fns: LayerFns = compiled_layer_fns() if compile_blocks and device.type == "cuda" else EAGER
    denoiser = Denoiser(tr, cond_embeds, uncond_embeds, fps_ids, block, guidance_scale, cfg, fns)

    is_long = overlap_history is not None and base_num_frames is not None and num_frames > base_num_frames
    overlap_latent = 0
    if is_long:
        assert overlap_history is not None
        overlap_latent = (overlap_history - 1) // vae_t + 1
        num_latent = (num_frames - 1) // vae_t + 1
        base_latent = (base_num_frames - 1) // vae_t + 1
        n_iter = 1 + (num_latent - base_latent - 1) // (base_latent - overlap_latent) + 1
    else:
        n_iter = 1
        base_latent = (num_frames - 1) // vae_t + 1

    accumulated: Tensor | None = None
    latents = torch.empty(0)
    for iter_idx in range(n_iter):
        latents, window_frames, prefix, prefix_frames = pipe.prepare_latents(
            batch_size * num_videos_per_prompt,
            tr.config.in_channels,
            height,
            width,
            num_frames,
            torch.float32,
            device,
            generator,
            None,
            video_latents=accumulated,
            base_latent_num_frames=base_latent if is_long else None,
            causal_block_size=block,
            overlap_history_latent_frames=overlap_latent if is_long else None,
            long_video_iter=iter_idx if is_long else None,
        )
        if prefix_frames > 0:
            latents[:, :, :prefix_frames] = prefix.to(dtype)

        step_matrix_cpu, step_index, update, intervals = pipe.generate_timestep_matrix(
            window_frames,
            timesteps_cpu,
            window_frames if is_long else base_latent,
            ar_step,
            prefix_frames,
            block,
        )
        step_matrix = step_matrix_cpu.to(device)
        groups = _scheduler_groups(
            pipe, step_index, update, intervals, num_inference_steps, timesteps_cpu, step_matrix_cpu, device
        )
        pipe._num_timesteps = len(step_matrix)
        max_interval = max(e - s for s, e in intervals)
        denoiser.start_window(window_frames, max_interval, latents.shape[3], latents.shape[4])

        for i in range(len(step_matrix)):
            if pipe.interrupt:
                continue
            t = step_matrix[i]
            pipe._current_timestep = t
            s, e = intervals[i]
            x = latents[:, :, s:e].to(dtype).clone()
            ts = t.expand(latents.shape[0], -1)[:, s:e].clone()
            ts_cpu = step_matrix_cpu[i, s:e].clone()
            noisy = range(0)
            if addnoise_condition > 0 and s < prefix_frames:
                # Same slicing as the pipeline: [s:prefix_frames] of the window-local tensors.
                nf = 0.001 * addnoise_condition
                x[:, :, s:prefix_frames] = (
                    x[:, :, s:prefix_frames] * (1.0 - nf) + torch.randn_like(x[:, :, s:prefix_frames]) * nf
                )
                ts[:, s:prefix_frames] = addnoise_condition
                ts_cpu[s:prefix_frames] = int(addnoise_condition)
                noisy = range(2 * s, s + prefix_frames)  # absolute frames of that window-local slice

            upd = update[i]
            updated = [f for f in range(s, e) if bool(upd[f])]
            if updated:
                noise_pred, out_lo = denoiser(x, ts, ts_cpu, s, updated, noisy, i)
                for g in groups:
                    if bool(upd[g.lo]) and s <= g.lo < e:
                        latents[:, :, g.lo : g.hi] = g.scheduler.step(
                            noise_pred[:, :, g.lo - out_lo : g.hi - out_lo],
                            t[g.lo],
                            latents[:, :, g.lo : g.hi],
                            return_dict=False,
                        )[0]
                        denoiser.latents_changed(g.lo, g.hi)

            if callback_on_step_end is not None:
                version = latents._version
                values = {
                    "latents": latents,
                    "prompt_embeds": cond_embeds,
                    "negative_prompt_embeds": uncond_embeds,
                }
                outputs = callback_on_step_end(pipe, i, t, {k: values[k] for k in tensor_inputs})
                new_latents = outputs.pop("latents", latents)
                new_pe = outputs.pop("prompt_embeds", cond_embeds)
                new_npe = outputs.pop("negative_prompt_embeds", uncond_embeds)
                # In-place edits bump the tensor's version counter; replacements are new objects.
                if new_latents is not latents or latents._version != version:
                    denoiser.all_latents_changed()
                if new_pe is not cond_embeds or new_npe is not uncond_embeds:
                    cond_embeds, uncond_embeds = new_pe, new_npe
                    denoiser.set_text(cond_embeds, uncond_embeds)
                latents = new_latents

        if is_long:
            if accumulated is None:
                accumulated = latents
            else:
                accumulated = torch.cat([accumulated, latents[:, :, overlap_latent:]], dim=2)

    if is_long:
        assert accumulated is not None
        latents = accumulated
    pipe._current_timestep = None
    video = decode_latents(pipe, latents, output_type)
    pipe.maybe_free_model_hooks()
    if not return_dict:
        return (video,)
    return SkyReelsV2PipelineOutput(frames=video)


@torch.no_grad()
def decode_latents(pipe: SkyReelsV2DiffusionForcingPipeline, latents: Tensor, output_type: str) -> Any:
    """The pipeline's decode: un-normalise with the VAE's latent statistics, decode, post-process."""
    if output_type == "latent":
        return latents
    latents = latents.to(pipe.vae.dtype)
    cfg = pipe.vae.config
    mean = torch.tensor(cfg.latents_mean).view(1, cfg.z_dim, 1, 1, 1).to(latents.device, latents.dtype)
    inv_std = 1.0 / torch.tensor(cfg.latents_std).view(1, cfg.z_dim, 1, 1, 1).to(
        latents.device, latents.dtype
    )
    latents = latents / inv_std + mean
    video = pipe.vae.decode(latents, return_dict=False)[0]
    return pipe.video_processor.postprocess_video(video, output_type=output_type)
