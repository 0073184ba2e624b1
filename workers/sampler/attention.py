"""Partial forward of `SkyReelsV2Transformer3DModel` for the diffusion-forcing sampler.

It runs the transformer's own modules on a contiguous run of frames instead of the whole window and
reproduces the arithmetic of `SkyReelsV2TransformerBlock.forward` operation by operation, so only the
set of frames and the attention layout differ from the stock forward:

* per-frame modulation stays in (batch, frames, 1, dim) and broadcasts over the frame's tokens instead
  of being repeated to every token (the same elementwise values, without the big repeated tensors);
* with `num_frame_per_block > 1` the stock model builds a dense N x N block-causal mask; here each query
  block attends to the key prefix that mask allows, one `scaled_dot_product_attention` call per block,
  so flash-class kernels can run and keys/values of earlier blocks can come from a cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F
from diffusers.models.modeling_utils import get_parameter_dtype
from diffusers.models.transformers.transformer_skyreels_v2 import (
    SkyReelsV2Attention,
    SkyReelsV2Transformer3DModel,
    SkyReelsV2TransformerBlock,
)
from torch import Tensor


@dataclass
class TextKV:
    """Cross-attention keys and values per layer, (batch, heads, text_len, head_dim): the text does not
    change between iterations, so they are projected once per request."""

    k: list[Tensor]
    v: list[Tensor]


@dataclass
class FrameCond:
    """Timestep (+fps) conditioning of some frames: `temb` (batch, frames, dim) for the output head and
    `proj` (batch, frames, 6, dim) for the blocks' modulation."""

    temb: Tensor
    proj: Tensor

    def frames(self, lo: int, hi: int) -> FrameCond:
        return FrameCond(self.temb[:, lo:hi], self.proj[:, lo:hi])


class WindowKV:
    """Self-attention keys/values of the first `capacity` tokens of a window for every layer, (batch, heads,
    tokens, head_dim). Preallocated so a forward writes its fresh keys in place and reads a prefix view,
    with no concat; tokens past the capacity are not kept (the memory policy's partial cache or
    recompute), so a forward that needs them starts early enough to compute them again."""

    def __init__(
        self, layers: int, batch: int, heads: int, capacity: int, head_dim: int, like: Tensor
    ) -> None:
        self.capacity = capacity
        shape = (batch, heads, capacity, head_dim)
        self.k = [like.new_empty(shape) for _ in range(layers)] if capacity else []
        self.v = [like.new_empty(shape) for _ in range(layers)] if capacity else []

    def prefix(self, layer: int, k: Tensor, v: Tensor, offset: int) -> tuple[Tensor, Tensor]:
        """Keys/values of window tokens [0, offset + len(k)): the first `offset` from the cache, the rest
        the fresh `k`/`v`, of which what fits is stored. `offset` must not exceed the capacity."""
        n = k.shape[2]
        stored = min(n, self.capacity - offset)
        if stored > 0:
            self.k[layer][:, :, offset : offset + stored] = k[:, :, :stored]
            self.v[layer][:, :, offset : offset + stored] = v[:, :, :stored]
        if offset + n <= self.capacity:
            return self.k[layer][:, :, : offset + n], self.v[layer][:, :, : offset + n]
        if offset == 0:
            return k, v
        return (
            torch.cat([self.k[layer][:, :, :offset], k], dim=2),
            torch.cat([self.v[layer][:, :, :offset], v], dim=2),
        )


def _kv_heads(attn: SkyReelsV2Attention, x: Tensor) -> tuple[Tensor, Tensor]:
    if getattr(attn, "fused_projections", False):
        k, v = attn.to_kv(x).chunk(2, dim=-1)
    else:
        k, v = attn.to_k(x), attn.to_v(x)
    k = attn.norm_k(k)
    return k.unflatten(2, (attn.heads, -1)).transpose(1, 2), v.unflatten(2, (attn.heads, -1)).transpose(1, 2)


def text_kv(tr: SkyReelsV2Transformer3DModel, prompt_embeds: Tensor) -> TextKV:
    if any(block.attn2.add_k_proj is not None for block in tr.blocks):
        raise NotImplementedError("image-conditioned (I2V) transformers are not supported")
    ehs = tr.condition_embedder.text_embedder(prompt_embeds)
    pairs = [_kv_heads(block.attn2, ehs) for block in tr.blocks]
    return TextKV([k for k, _ in pairs], [v for _, v in pairs])


def frame_cond(
    tr: SkyReelsV2Transformer3DModel, timestep: Tensor, fps_ids: list[int], text_dtype: torch.dtype
) -> FrameCond:
    """Mirrors `SkyReelsV2TimeTextImageEmbedding.forward` and the fps injection of the model's forward
    for a (batch, frames) timestep; every op is per frame, so a subset of frames gives the same values."""
    emb = tr.condition_embedder
    t = emb.timesteps_proj(timestep)
    embedder_dtype = get_parameter_dtype(emb.time_embedder)
    if t.dtype != embedder_dtype and embedder_dtype != torch.int8:
        t = t.to(embedder_dtype)
    temb = emb.time_embedder(t).to(text_dtype)
    proj = emb.time_proj(emb.act_fn(temb)).unflatten(-1, (6, -1))
    if tr.config.inject_sample_info:
        fps = torch.tensor(fps_ids, dtype=torch.long, device=timestep.device)
        # The stock forward adds the (batch, 6, dim) fps projection to every frame of the sample.
        proj = proj + tr.fps_projection(tr.fps_embedding(fps)).unflatten(1, (6, -1)).unsqueeze(1)
    return FrameCond(temb, proj)


def window_rope(
    tr: SkyReelsV2Transformer3DModel, frames: int, height: int, width: int
) -> tuple[Tensor, Tensor]:
    """cos/sin (1, tokens, 1, head_dim / 2) for a window of latent frames; positions are relative to
    the window's first frame, as in the stock forward over that window."""
    shape_only = torch.empty((1, 1, frames, height, width), device="meta")
    freqs_cos, freqs_sin = tr.rope(shape_only)
    return freqs_cos[..., 0::2], freqs_sin[..., 1::2]


def _rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(x)


def _modulation(table: Tensor, proj: Tensor) -> list[Tensor]:
    mod = table.unsqueeze(1) + proj.float()  # (b, frames, 6, dim)
    return [mod[:, :, i : i + 1] for i in range(6)]  # each (b, frames, 1, dim): broadcasts over tokens


def attn_inputs(
    block: SkyReelsV2TransformerBlock, hs: Tensor, proj: Tensor, cos: Tensor, sin: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """norm1 + modulation, QKV, q/k norm and rotary; returns (b, heads, tokens, head_dim) each."""
    shift, scale = _modulation(block.scale_shift_table, proj)[:2]
    x = (block.norm1(hs.float()) * (1 + scale) + shift).type_as(hs).flatten(1, 2)
    attn = block.attn1
    if getattr(attn, "fused_projections", False):
        q, k, v = attn.to_qkv(x).chunk(3, dim=-1)
    else:
        q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
    q, k = attn.norm_q(q), attn.norm_k(k)
    q, k, v = (y.unflatten(2, (attn.heads, -1)) for y in (q, k, v))
    q, k = _rotary(q, cos, sin), _rotary(k, cos, sin)
    return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)


def attn_out_and_rest(
    block: SkyReelsV2TransformerBlock,
    hs: Tensor,
    attn_heads: Tensor,
    proj: Tensor,
    text_k: Tensor,
    text_v: Tensor,
) -> Tensor:
    """Self-attention output projection and gate, cross-attention, feed-forward."""
    _, _, gate, c_shift, c_scale, c_gate = _modulation(block.scale_shift_table, proj)
    b, f, p, d = hs.shape
    attn1 = block.attn1
    attn_out = attn1.to_out[1](attn1.to_out[0](attn_heads.transpose(1, 2).flatten(2)))
    hs = (hs.float() + attn_out.view(b, f, p, d) * gate).type_as(hs)

    attn2 = block.attn2
    x = block.norm2(hs.float()).type_as(hs).flatten(1, 2)
    q = attn2.norm_q(attn2.to_q(x)).unflatten(2, (attn2.heads, -1)).transpose(1, 2)
    cross = F.scaled_dot_product_attention(q, text_k, text_v).transpose(1, 2).flatten(2).type_as(q)
    hs = hs + attn2.to_out[1](attn2.to_out[0](cross)).view(b, f, p, d)

    x = (block.norm3(hs.float()) * (1 + c_scale) + c_shift).type_as(hs)
    ff = block.ffn(x)
    return (hs.float() + ff.float() * c_gate).type_as(hs)


LayerFns = tuple[Callable[..., tuple[Tensor, Tensor, Tensor]], Callable[..., Tensor]]
EAGER: LayerFns = (attn_inputs, attn_out_and_rest)


@cache
def compiled_layer_fns() -> LayerFns:
    """Regional compile: the per-layer pieces around attention, shared by all layers (same code, the
    block is an argument), with dynamic shapes because the number of active frames varies. One pair per
    process, so a warm-up's compile serves every later job."""
    return (
        torch.compile(attn_inputs, dynamic=True),
        torch.compile(attn_out_and_rest, dynamic=True),
    )


def forward_frames(
    tr: SkyReelsV2Transformer3DModel,
    x: Tensor,
    cond: FrameCond,
    text: TextKV,
    cos: Tensor,
    sin: Tensor,
    kv: WindowKV | None,
    kv_offset: int,
    block_frames: int,
    out_from: int,
    fns: LayerFns = EAGER,
) -> Tensor:
    """Transformer output for frames `out_from:` of `x` (batch, channels, frames, h, w).

    `x` holds the latent input of a contiguous run of frames of the window; `cond`, `cos`/`sin` cover
    the same frames and the batch of `cond`/`text` may be a multiple of x's (cond and uncond in one
    pass). With `kv` (block-causal model), the run starts on a block boundary `kv_offset` tokens into
    the window, keys of the earlier tokens are read from `kv` and the run's own are written there (as far
    as its capacity goes);
    without it, attention is full over the run, which must then be the whole window.
    """
    p_t, p_h, p_w = tr.config.patch_size
    if p_t != 1:
        raise NotImplementedError("temporal patch size must be 1")
    batch = cond.proj.shape[0]
    frames, ph, pw = x.shape[2], x.shape[3] // p_h, x.shape[4] // p_w
    tokens_per_frame = ph * pw
    hs = tr.patch_embedding(x).flatten(3).transpose(1, 2).transpose(2, 3)  # (B, frames, tokens, dim)
    hs = hs.repeat(batch // hs.shape[0], 1, 1, 1)

    block_tokens = block_frames * tokens_per_frame
    inputs_fn, rest_fn = fns
    for layer, block in enumerate(tr.blocks):
        q, k, v = inputs_fn(block, hs, cond.proj, cos, sin)
        if kv is None:
            heads = F.scaled_dot_product_attention(q, k, v)
        else:
            kbuf, vbuf = kv.prefix(layer, k, v, kv_offset)
            parts = []
            for lo in range(0, q.shape[2], block_tokens):
                end = kv_offset + lo + block_tokens
                parts.append(
                    F.scaled_dot_product_attention(
                        q[:, :, lo : lo + block_tokens], kbuf[:, :, :end], vbuf[:, :, :end]
                    )
                )
            heads = torch.cat(parts, dim=2)
        hs = rest_fn(block, hs, heads.type_as(q), cond.proj, text.k[layer], text.v[layer])

    hs = hs[:, out_from:]
    mod = tr.scale_shift_table.unsqueeze(1) + cond.temb[:, out_from:].unsqueeze(2)  # (b, frames, 2, dim)
    shift, scale = mod[:, :, 0:1], mod[:, :, 1:2]
    hs = (tr.norm_out(hs.float()) * (1 + scale) + shift).type_as(hs)
    hs = tr.proj_out(hs)
    hs = hs.reshape(batch, frames - out_from, ph, pw, p_t, p_h, p_w, -1)
    return hs.permute(0, 7, 1, 4, 2, 5, 3, 6).flatten(6, 7).flatten(4, 5).flatten(2, 3)
