"""The model call of one denoising iteration: which frames to compute, the key/value cache, CFG.

With a block-causal model a frame block's keys/values at every layer depend only on the inputs
(latents, timestep, re-noise) of the blocks from the window start up to it. So each cached block
records what it was computed from; a forward starts at the first block whose record no longer matches
(or at the first updated block) and ends at the last updated block, since blocks after it cannot
influence it. Recomputing a block drops the records of all later blocks.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import SkyReelsV2Transformer3DModel
from torch import Tensor

from workers.sampler.attention import (
    FrameCond,
    LayerFns,
    WindowKV,
    forward_frames,
    frame_cond,
    text_kv,
    window_rope,
)

BlockKey = tuple[Any, ...]


class Denoiser:
    def __init__(
        self,
        tr: SkyReelsV2Transformer3DModel,
        cond_embeds: Tensor,
        uncond_embeds: Tensor | None,
        fps_ids: list[int],
        block: int,
        guidance_scale: float,
        cfg: bool,
        fns: LayerFns,
        cache_blocks: int | None = None,
    ) -> None:
        """`cache_blocks`: how many blocks of an interval may keep their keys/values (the memory policy);
        None for all of them, 0 to recompute every forward from the interval's start."""
        self.tr = tr
        self.fps_ids = fps_ids
        self.block = block
        self.causal = block > 1  # the stock model masks only when num_frame_per_block > 1
        self.guidance_scale = guidance_scale
        self.cfg = cfg
        self.fns = fns
        self.cache_blocks = cache_blocks if cache_blocks is not None else 2**31
        self.set_text(cond_embeds, uncond_embeds)
        self.start_window(0, 0, 0, 0)

    def set_text(self, cond_embeds: Tensor, uncond_embeds: Tensor | None) -> None:
        if self.cfg:
            assert uncond_embeds is not None  # encode_prompt makes them whenever CFG is on
            cond_embeds = torch.cat([cond_embeds, uncond_embeds])
        self.text = text_kv(self.tr, cond_embeds)
        # Self-attention keys of later layers depend on the text through earlier cross-attention.
        self.keys: list[BlockKey | None] = [None] * len(getattr(self, "keys", []))

    def start_window(self, frames: int, max_interval: int, lat_h: int, lat_w: int) -> None:
        n_blocks = frames // self.block if frames else 0
        self.keys = [None] * n_blocks
        self.latent_version = [0] * n_blocks
        self.kv: WindowKV | None = None
        self.rope_start: int | None = None
        self.window_shape = (max_interval, lat_h, lat_w)
        _, p_h, p_w = self.tr.config.patch_size
        self.tokens_per_frame = (lat_h // p_h) * (lat_w // p_w)

    def latents_changed(self, lo: int, hi: int) -> None:
        """Frames [lo, hi) got new latents."""
        for b in range(lo // self.block, (hi - 1) // self.block + 1):
            self.latent_version[b] += 1

    def all_latents_changed(self) -> None:
        self.latent_version = [v + 1 for v in self.latent_version]

    def __call__(
        self, x: Tensor, ts: Tensor, ts_cpu: Tensor, s: int, updated: list[int], noisy: range, iteration: int
    ) -> tuple[Tensor, int]:
        """Guided model output for absolute frames [out_lo, end of the last updated block) and out_lo.

        `x`, `ts` (device) and `ts_cpu` are the window's input latents and timesteps from absolute frame
        `s`; `updated` the frames the scheduler steps; `noisy` the frames re-noised at this iteration."""
        tr, block = self.tr, self.block
        if self.rope_start != s:
            self.rope = window_rope(tr, *self.window_shape)
            self.rope_start = s
        cos, sin = self.rope
        kv: WindowKV | None = None
        if not self.causal:
            # Full attention: every frame of the window influences every other, so all are computed.
            lo, hi, out_lo = s, s + x.shape[2], s
        else:
            lo, hi, out_lo = self._frames_to_compute(ts_cpu, s, updated, noisy, iteration)
            kv = self._window_kv(x, cos)

        cond: FrameCond = frame_cond(tr, ts[:, lo - s : hi - s], self.fps_ids, x.dtype)
        if self.cfg:
            cond = FrameCond(cond.temb.repeat(2, 1, 1), cond.proj.repeat(2, 1, 1, 1))
        t0, t1 = (lo - s) * self.tokens_per_frame, (hi - s) * self.tokens_per_frame
        out = forward_frames(
            tr, x[:, :, lo - s : hi - s], cond, self.text, cos[:, t0:t1], sin[:, t0:t1], kv, t0, block,
            out_lo - lo, self.fns,
        )  # fmt: skip
        if self.cfg:
            half = out.shape[0] // 2
            cond_out, uncond_out = out[:half], out[half:]
            out = uncond_out + self.guidance_scale * (cond_out - uncond_out)
        return out, out_lo

    def _frames_to_compute(
        self, ts_cpu: Tensor, s: int, updated: list[int], noisy: range, iteration: int
    ) -> tuple[int, int, int]:
        """(lo, hi, out_lo) in absolute frames: from the first block that is not cached with the inputs it
        has now, up to the last updated block; output from the first updated block. Only the first
        `cache_blocks` blocks of the interval are ever cached."""
        block = self.block
        first_upd, last_upd = updated[0] // block, updated[-1] // block
        cached_end = min(first_upd, s // block + self.cache_blocks)

        def key(b: int) -> BlockKey:
            frames = range(b * block, (b + 1) * block)
            tag = iteration if any(f in noisy for f in frames) else -1  # fresh noise never repeats
            return (
                s,
                tuple(ts_cpu[frames.start - s : frames.stop - s].tolist()),
                self.latent_version[b],
                tag,
            )

        lo_block = next((b for b in range(s // block, cached_end) if self.keys[b] != key(b)), cached_end)
        for b in range(lo_block, len(self.keys)):
            self.keys[b] = key(b) if b <= last_upd and b < s // block + self.cache_blocks else None
        return lo_block * block, (last_upd + 1) * block, first_upd * block

    def _window_kv(self, x: Tensor, cos: Tensor) -> WindowKV:
        if self.kv is None:
            batch = x.shape[0] * (2 if self.cfg else 1)
            capacity = min(cos.shape[1], self.cache_blocks * self.block * self.tokens_per_frame)
            self.kv = WindowKV(
                len(self.tr.blocks), batch, self.tr.config.num_attention_heads, capacity, cos.shape[-1] * 2, x
            )
        return self.kv
