"""Decoding a video as its latent frames become final, equal to one decode of the final latents.

The Wan VAE decoder is causal in time: `AutoencoderKLWan._decode` runs the decoder one latent frame at
a time (the first gives 1 pixel frame, each later one 4), carrying a per-convolution feature cache from
frame to frame. `IncrementalDecoder` runs that same loop, but across calls: fed the next latent frames
in order, it returns their pixel frames and keeps the cache for the next call, so the concatenation of
its outputs is the full decode, operation for operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import SkyReelsV2DiffusionForcingPipeline
from torch import Tensor

from workers.sampler.decode import unnormalise


@dataclass(frozen=True)
class FinalFrames:
    """Latent frames `[start, stop)` of the video became final and were decoded: what the sampler's
    `on_frames` is told."""

    start: int
    stop: int
    frames: Any
    """Their pixel frames, post-processed as the call's `output_type` (for `np`: (batch, T, H, W, 3))."""
    first_frame: int
    """Index in the whole video of the first of `frames`."""
    iteration: int
    """Denoising iterations run (over all windows) when they became final."""


def pixel_frames(latent_frames: int) -> int:
    """Pixel frames of `latent_frames` latent frames: 1 for the first, 4 for each later one."""
    return 0 if latent_frames == 0 else 1 + 4 * (latent_frames - 1)


class IncrementalDecoder:
    """Feed latent frames in order with `feed`; `video()` is the concatenation of what it returned."""

    def __init__(self, pipe: SkyReelsV2DiffusionForcingPipeline, output_type: str) -> None:
        self.pipe = pipe
        self.vae = pipe.vae
        self.output_type = output_type
        self.fed = 0
        """Latent frames decoded so far."""
        self._caches: list[list[Tensor | None]] = []
        self._inputs: list[Tensor] = []
        self._outputs: list[Any] = []

    @staticmethod
    def supported(pipe: SkyReelsV2DiffusionForcingPipeline, height: int, width: int) -> bool:
        """Whether `vae.decode` would run the per-frame loop this mirrors: not a tiled decode, and no
        offload hook that moves the VAE for `decode` (this calls its sub-modules directly)."""
        vae = pipe.vae
        tiled = vae.use_tiling and (height > vae.tile_sample_min_height or width > vae.tile_sample_min_width)
        return not tiled and not hasattr(vae, "_hf_hook")

    @torch.no_grad()
    def feed(self, latents: Tensor) -> Any:
        """The pixel frames of `latents` (batch, channels, frames, h, w): the next latent frames of the
        video, final, as the sampler holds them (normalised)."""
        self._inputs.append(latents.detach().clone())
        z = unnormalise(self.pipe, latents)
        # `vae.decode` decodes each video of a batch on its own when slicing is on.
        parts = z.split(1) if self.vae.use_slicing and z.shape[0] > 1 else [z]
        if not self._caches:
            self._caches = [[None] * self.vae._cached_conv_counts["decoder"] for _ in parts]
        video = torch.cat(
            [self._decode(part, cache) for part, cache in zip(parts, self._caches, strict=True)]
        )
        self.fed += latents.shape[2]
        frames = self.pipe.video_processor.postprocess_video(video, output_type=self.output_type)
        self._outputs.append(frames)
        return frames

    def _decode(self, z: Tensor, cache: list[Tensor | None]) -> Tensor:
        x = self.vae.post_quant_conv(z)
        out = []
        for i in range(x.shape[2]):
            out.append(
                self.vae.decoder(
                    x[:, :, i : i + 1], feat_cache=cache, feat_idx=[0], first_chunk=self.fed + i == 0
                )
            )
        video = torch.cat(out, 2)
        if self.vae.config.patch_size is not None:
            from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

            video = unpatchify(video, patch_size=self.vae.config.patch_size)
        return torch.clamp(video, min=-1.0, max=1.0)

    def matches(self, latents: Tensor) -> bool:
        """Whether what was fed is exactly `latents` (the final latents of the whole video): a callback
        may have changed frames after they were decoded."""
        if not self._inputs:
            return latents.shape[2] == 0
        fed = torch.cat(self._inputs, 2)
        return fed.shape == latents.shape and bool(torch.equal(fed, latents))

    def video(self) -> Any:
        """All frames decoded, as one decode of the latents fed would return them."""
        if self.output_type == "np":
            return np.concatenate(self._outputs, axis=1)
        if self.output_type == "pt":
            return torch.cat(self._outputs, dim=1)
        return [
            [image for chunk in self._outputs for image in chunk[b]] for b in range(len(self._outputs[0]))
        ]
