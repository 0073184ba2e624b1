"""The released SkyReels-V2 DF architectures, and random-weight pipelines built from them.

Benchmarks and checks need the real shapes (the speed and memory of the catalog models) without the
weights (nothing may be downloaded): these configs are those of the published checkpoints' transformer,
VAE and text encoder, and `catalog_pipeline` builds the pipeline from them with seeded random weights.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKLWan, SkyReelsV2DiffusionForcingPipeline, SkyReelsV2Transformer3DModel
from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

from shared.tokenizer import EOS, PAD, UNK, byte_tokenizer
from workers.models import make_scheduler

DF_1_3B: dict[str, Any] = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 12,
    "attention_head_dim": 128,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 8960,
    "num_layers": 30,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "inject_sample_info": True,
}
"""SkyReels-V2-DF-1.3B: 30 layers, 12 heads x 128 (dim 1536)."""

DF_14B: dict[str, Any] = {**DF_1_3B, "num_attention_heads": 40, "ffn_dim": 13824, "num_layers": 40}
"""SkyReels-V2-DF-14B (540P and 720P): 40 layers, 40 heads x 128 (dim 5120)."""

WAN_VAE: dict[str, Any] = {
    "base_dim": 96,
    "z_dim": 16,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "temperal_downsample": [False, True, True],
}

UMT5_XXL: dict[str, Any] = {
    "vocab_size": 256384,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "feed_forward_proj": "gated-gelu",
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}
"""The UMT5-XXL encoder the DF checkpoints ship (output dim 4096 = the transformer's `text_dim`)."""

TINY_UMT5: dict[str, Any] = {
    **UMT5_XXL,
    "vocab_size": 384,
    "d_kv": 8,
    "d_ff": 64,
    "num_layers": 1,
    "num_heads": 2,
}
"""Same output dim as UMT5-XXL, tiny otherwise: for CPU runs of the catalog code path."""


def to_bf16_like_from_pretrained(model: torch.nn.Module) -> None:
    """BF16 weights except the modules `from_pretrained(torch_dtype=bfloat16)` keeps in FP32."""
    keep: list[str] = list(getattr(model, "_keep_in_fp32_modules", None) or [])
    for name, param in model.named_parameters():
        if not any(k in name for k in keep):
            param.data = param.data.to(torch.bfloat16)


def catalog_transformer(
    config: dict[str, Any], device: str | torch.device, dtype: torch.dtype, layers: int | None = None
) -> SkyReelsV2Transformer3DModel:
    """Seeded random weights; `layers` overrides the depth (every layer has the real shapes)."""
    torch.manual_seed(0)
    with torch.device(device):
        transformer = SkyReelsV2Transformer3DModel(**{**config, "num_layers": layers or config["num_layers"]})
    if dtype == torch.bfloat16:
        to_bf16_like_from_pretrained(transformer)
    return transformer


def catalog_pipeline(
    device: str,
    dtype: torch.dtype = torch.bfloat16,
    layers: int | None = None,
    text_encoder: str = "tiny",
    tiny_vae: bool = False,
) -> SkyReelsV2DiffusionForcingPipeline:
    """DF-1.3B transformer (BF16 as `from_pretrained` loads it, or FP32), the Wan VAE in FP32 (as
    `workers.models.load_pretrained` loads it) and a UMT5 encoder: `text_encoder="xxl"` has the real
    UMT5-XXL shapes (BF16, about 11 GB), `"tiny"` only its output dimension. `tiny_vae` keeps the VAE's
    structure at 1/8 of its width, for CPU runs where the decode would dominate."""
    transformer = catalog_transformer(DF_1_3B, device, dtype, layers)
    torch.manual_seed(0)
    with torch.device(device):
        vae = AutoencoderKLWan(**{**WAN_VAE, "base_dim": 12} if tiny_vae else WAN_VAE)
        umt5 = UMT5Config(**(UMT5_XXL if text_encoder == "xxl" else TINY_UMT5))
        encoder = UMT5EncoderModel._from_config(umt5, dtype=dtype)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=byte_tokenizer(), pad_token=PAD, eos_token=EOS, unk_token=UNK
    )
    pipe = SkyReelsV2DiffusionForcingPipeline(
        tokenizer=tokenizer,
        text_encoder=encoder,
        transformer=transformer,
        vae=vae,
        scheduler=make_scheduler(),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
