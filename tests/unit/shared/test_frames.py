"""Frame arithmetic: long-video windows as the pipeline runs them."""

from __future__ import annotations

import pytest

from shared.frames import output_frames, plan_windows


def test_plan_windows_matches_pipeline_arithmetic() -> None:
    # 57 frames → 15 latent; windows of 10 with 5 overlapping: [10, then 5 new + 5 prefix].
    windows = plan_windows(57, 37, 17, 5)
    assert [(w.latent_frames, w.prefix_frames) for w in windows] == [(10, 0), (10, 5)]
    assert output_frames(windows) == 57
    assert [w.latent_frames for w in plan_windows(97, 97, None, 5)] == [25]
    with pytest.raises(ValueError, match="causal_block_size"):
        plan_windows(97, 97, None, 4)
