"""`shared.frames.pipeline_windows` states the windows the pipeline runs, including the inputs the API
refuses (rounded frame counts, prefixes truncated to whole blocks): the sampler relies on it."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from shared.frames import Window, pipeline_windows, round_num_frames
from workers.models import build_tiny_random

CASES = [  # num_frames, base_num_frames, overlap_history, causal_block_size
    (37, 97, None, 5),  # short
    (77, 37, 17, 5),  # 3 windows
    (57, 37, 17, 5),  # 2 windows, the last shorter
    (79, 37, 17, 5),  # rounded down to 77 frames
    (61, 37, 13, 1),  # overlap of 4 latent frames, block 1
    (61, 37, 13, 2),  # 4 overlap frames at block 2
    (69, 37, 17, 2),  # 5 overlap frames, prefix cut to 4 at block 2; 3 windows
]


def _recorded_windows(num_frames: int, base: int, overlap: int | None, block: int) -> list[Window]:
    pipe = build_tiny_random(0)
    seen: list[Window] = []
    prepare = pipe.prepare_latents

    def recording(*args: Any, **kwargs: Any) -> Any:
        out = prepare(*args, **kwargs)
        overlap_frames = kwargs["overlap_history_latent_frames"] if kwargs["video_latents"] is not None else 0
        seen.append(Window(out[1], out[3], overlap_frames))
        return out

    pipe.prepare_latents = recording  # type: ignore[method-assign]
    pipe(
        prompt="x",
        height=16,
        width=16,
        num_frames=num_frames,
        base_num_frames=base,
        overlap_history=overlap,
        causal_block_size=block,
        num_inference_steps=1,
        guidance_scale=1.0,
        generator=torch.Generator().manual_seed(0),
        output_type="latent",
    )
    return seen


@pytest.mark.parametrize("case", CASES, ids=str)
def test_pipeline_windows_are_the_pipelines(case: tuple[int, int, int | None, int]) -> None:
    num_frames, base, overlap, block = case
    expected = _recorded_windows(num_frames, base, overlap, block)
    assert pipeline_windows(round_num_frames(num_frames), base, overlap, block) == expected
