"""Model versions → loaded `SkyReelsV2DiffusionForcingPipeline`s.

Real versions load from the local Hugging Face cache only (`local_files_only`): a worker never
downloads weights at run time. `tiny-random` is built in code from the same diffusers and
transformers classes, with tiny configs and seeded weights, so CI runs the real pipeline code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLWan,
    SkyReelsV2DiffusionForcingPipeline,
    SkyReelsV2Transformer3DModel,
    UniPCMultistepScheduler,
)
from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

from shared.catalog import MODEL_VERSIONS
from shared.errors import InvalidInput, ModelNotAvailable
from shared.tokenizer import EOS, PAD, UNK, byte_tokenizer

FLOW_SHIFT = 8.0
"""SkyReels-V2 DF text-to-video uses UniPC with flow shift 8."""

TINY_TEXT_DIM = 32


def make_scheduler() -> UniPCMultistepScheduler:
    return UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        num_train_timesteps=1000,
        flow_shift=FLOW_SHIFT,
    )


def tiny_random_components(
    seed: int = 0, *, layers: int = 2, heads: int = 2, head_dim: int = 12, rope_max_seq_len: int = 32
) -> dict:
    """Seeded tiny components. `layers`/`heads`/`head_dim` let benchmarks build a larger random model;
    `rope_max_seq_len` bounds the latent frames (and patch rows/columns) one forward can take."""
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=byte_tokenizer().get_vocab_size(),
            d_model=TINY_TEXT_DIM,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=byte_tokenizer(), pad_token=PAD, eos_token=EOS, unk_token=UNK
    )
    torch.manual_seed(seed)
    transformer = SkyReelsV2Transformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        in_channels=16,
        out_channels=16,
        text_dim=TINY_TEXT_DIM,
        freq_dim=256,
        ffn_dim=32 if layers <= 2 else 4 * heads * head_dim,
        num_layers=layers,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=rope_max_seq_len,
    )
    return {
        "transformer": transformer,
        "vae": vae,
        "scheduler": make_scheduler(),
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
    }


def build_tiny_random(seed: int = 0, **sizes: int) -> SkyReelsV2DiffusionForcingPipeline:
    pipe = SkyReelsV2DiffusionForcingPipeline(**tiny_random_components(seed, **sizes))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_pretrained(hf_repo: str, device: str, hf_home: Path | None) -> SkyReelsV2DiffusionForcingPipeline:
    """BF16 transformer and text encoder, float32 VAE (its decode is precision-sensitive), UniPC shift 8."""
    cache_dir = str(hf_home / "hub") if hf_home else None
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        vae = AutoencoderKLWan.from_pretrained(
            hf_repo, subfolder="vae", torch_dtype=torch.float32, local_files_only=True, cache_dir=cache_dir
        )
        pipe = SkyReelsV2DiffusionForcingPipeline.from_pretrained(
            hf_repo, vae=vae, torch_dtype=dtype, local_files_only=True, cache_dir=cache_dir
        )
    except OSError as exc:
        raise ModelNotAvailable(
            f"{hf_repo} is not in the local Hugging Face cache ({cache_dir or 'default'}); "
            f"download it ahead of time (huggingface-cli download {hf_repo}): {exc}"
        ) from exc
    pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config, flow_shift=FLOW_SHIFT)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def revision_of(model_version: str, pipe: SkyReelsV2DiffusionForcingPipeline) -> str:
    """The checkpoint's commit (its Hugging Face snapshot folder), or how a built-in version is made."""
    spec = MODEL_VERSIONS[model_version]
    if spec.hf_repo is None:
        return "built in code: workers.models.build_tiny_random(seed=0)"
    source = Path(str(pipe.config.get("_name_or_path", "")))
    return source.name if source.parent.name == "snapshots" else str(source)


def load_pipeline(
    model_version: str, device: str, hf_home: Path | None = None
) -> SkyReelsV2DiffusionForcingPipeline:
    spec = MODEL_VERSIONS.get(model_version)
    if spec is None:
        raise InvalidInput(f"model_version: unknown version {model_version!r}", field="model_version")
    if spec.hf_repo is None:
        return build_tiny_random().to(device)
    return load_pretrained(spec.hf_repo, device, hf_home)
