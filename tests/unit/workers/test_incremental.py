"""Progressive decode: latent frames decoded as the schedule finishes them give, concatenated, exactly
the decode of the final latents (FP32, tiny-random; compared bitwise)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from workers.models import build_tiny_random
from workers.sampler import generate
from workers.sampler.decode import decode_latents
from workers.sampler.incremental import FinalFrames, IncrementalDecoder, pixel_frames

SEVERAL_BLOCKS = {  # 10 latent frames, 2 causal blocks, the second finishing 2 iterations later
    "height": 48,
    "width": 32,
    "num_frames": 37,
    "num_inference_steps": 5,
    "ar_step": 2,
    "causal_block_size": 5,
    "guidance_scale": 6.0,
}
LONG = {  # 20 latent frames: windows of 10 with 5 of overlap -> 3 windows
    "height": 48,
    "width": 32,
    "num_frames": 77,
    "base_num_frames": 37,
    "overlap_history": 17,
    "num_inference_steps": 4,
    "ar_step": 1,
    "causal_block_size": 5,
    "guidance_scale": 6.0,
    "addnoise_condition": 20,
}


@pytest.fixture(scope="module")
def tiny() -> Any:
    return build_tiny_random(0)


def _latents(batch: int, frames: int) -> torch.Tensor:
    return torch.randn(batch, 16, frames, 6, 4, generator=torch.Generator().manual_seed(7))


@pytest.mark.parametrize("output_type", ["np", "pt"])
def test_chunks_concatenate_to_the_full_decode(tiny: Any, output_type: str) -> None:
    latents = _latents(1, 9)
    decoder = IncrementalDecoder(tiny, output_type)
    sizes = [decoder.feed(latents[:, :, a:b]).shape[1] for a, b in [(0, 1), (1, 2), (2, 5), (5, 9)]]
    assert sizes == [1, 4, 12, 16]
    full = decode_latents(tiny, latents, output_type)
    got = decoder.video()
    assert type(got) is type(full) and got.shape == full.shape and got.shape[1] == pixel_frames(9)
    assert np.array_equal(got, full) if output_type == "np" else torch.equal(got, full)
    assert decoder.matches(latents) and not decoder.matches(latents[:, :, :8])


def test_a_batch_decoded_in_slices(tiny: Any) -> None:
    latents = _latents(2, 4)
    tiny.vae.enable_slicing()
    try:
        decoder = IncrementalDecoder(tiny, "np")
        decoder.feed(latents[:, :, :3])
        decoder.feed(latents[:, :, 3:])
        np.testing.assert_array_equal(decoder.video(), decode_latents(tiny, latents, "np"))
    finally:
        tiny.vae.disable_slicing()


def _run(pipe: Any, **kwargs: Any) -> np.ndarray:
    torch.manual_seed(1234)
    generator = torch.Generator().manual_seed(5)
    out = generate(pipe, prompt="a red fox in snow", negative_prompt="blurry", generator=generator, **kwargs)
    return np.asarray(out.frames)


@pytest.mark.parametrize("case", [SEVERAL_BLOCKS, LONG], ids=["blocks", "long-windows"])
def test_frames_arrive_in_order_before_the_end_and_equal_a_full_decode(tiny: Any, case: dict) -> None:
    told: list[FinalFrames] = []
    steps: list[int] = []

    def on_step(pipe: Any, i: int, t: Any, kw: dict) -> dict:
        steps.append(i)
        return {}

    progressive = _run(tiny, **case, on_frames=told.append, callback_on_step_end=on_step)
    full = _run(tiny, **case, progressive_decode=False)
    np.testing.assert_array_equal(progressive, full)
    # Contiguous, in order, covering every latent frame; pixel frames placed where the video has them.
    assert [f.start for f in told] == [0] + [f.stop for f in told[:-1]]
    assert told[-1].stop == (case["num_frames"] - 1) // 4 + 1
    for f in told:
        assert f.first_frame == pixel_frames(f.start)
        np.testing.assert_array_equal(f.frames, full[:, f.first_frame : pixel_frames(f.stop)])
    # The first block is final (and decoded) while later ones still have iterations to run.
    assert told[0].iteration < len(steps) and told[-1].iteration == len(steps)
    assert len(told) >= 2


def test_a_callback_editing_decoded_frames_falls_back_to_a_full_decode(tiny: Any) -> None:
    def edit(pipe: Any, i: int, t: Any, kw: dict) -> dict:
        if i == 6:  # block 0 was final (and decoded) after iteration 4
            kw["latents"][:, :, :5].mul_(0.5)
        return {}

    told: list[FinalFrames] = []
    progressive = _run(tiny, **SEVERAL_BLOCKS, on_frames=told.append, callback_on_step_end=edit)
    full = _run(tiny, **SEVERAL_BLOCKS, progressive_decode=False, callback_on_step_end=edit)
    np.testing.assert_array_equal(progressive, full)
    assert not np.array_equal(told[0].frames, full[:, : told[0].frames.shape[1]])
