"""The pipeline's VAE decode of final latents, shared by the sampler and the benchmarks."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import SkyReelsV2DiffusionForcingPipeline
from torch import Tensor


def unnormalise(pipe: SkyReelsV2DiffusionForcingPipeline, latents: Tensor) -> Tensor:
    """Latents in the VAE's dtype and scale, with the arithmetic the pipeline uses (`* std + mean` would
    round differently)."""
    latents = latents.to(pipe.vae.dtype)
    cfg = pipe.vae.config
    mean = torch.tensor(cfg.latents_mean).view(1, cfg.z_dim, 1, 1, 1).to(latents.device, latents.dtype)
    inv_std = 1.0 / torch.tensor(cfg.latents_std).view(1, cfg.z_dim, 1, 1, 1).to(
        latents.device, latents.dtype
    )
    return latents / inv_std + mean


@torch.no_grad()
def decode_latents(pipe: SkyReelsV2DiffusionForcingPipeline, latents: Tensor, output_type: str) -> Any:
    """Un-normalise with the VAE's latent statistics, decode, post-process (as the pipeline does)."""
    if output_type == "latent":
        return latents
    video = pipe.vae.decode(unnormalise(pipe, latents), return_dict=False)[0]
    return pipe.video_processor.postprocess_video(video, output_type=output_type)
