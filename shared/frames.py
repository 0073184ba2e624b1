"""Frame arithmetic of diffusion forcing: latent frames, long-video windows, causal blocks.

Pure functions shared by the API (to refuse what the pipeline would silently round or truncate), the
worker (to know how many denoising iterations a job has) and the sampler (to run the same windows as
the pipeline). `pipeline_windows` is the one statement of how a video is cut into windows.
"""

from __future__ import annotations

from dataclasses import dataclass

VAE_TEMPORAL = 4


def latent_frames(num_frames: int) -> int:
    return (num_frames - 1) // VAE_TEMPORAL + 1


def round_num_frames(num_frames: int) -> int:
    """The pipeline's silent rounding down to 4k + 1 frames (the API refuses other counts instead)."""
    if num_frames % VAE_TEMPORAL != 1:
        num_frames = num_frames // VAE_TEMPORAL * VAE_TEMPORAL + 1
    return max(num_frames, 1)


@dataclass(frozen=True)
class Window:
    """One autoregressive window of a (possibly long) video, in latent frames."""

    latent_frames: int
    prefix_frames: int
    """Frames carried over from the previous window (already denoised), kept fixed as its start."""
    overlap_frames: int = 0
    """Leading frames of this window that the video already holds: dropped when the window is appended.
    Equal to `prefix_frames` unless the pipeline truncated the prefix to whole causal blocks."""


def is_long_video(num_frames: int, base_num_frames: int | None, overlap_history: int | None) -> bool:
    """Whether the pipeline runs several windows (its `is_long_video`); `num_frames` as it rounds it."""
    return overlap_history is not None and base_num_frames is not None and num_frames > base_num_frames


def pipeline_windows(
    num_frames: int, base_num_frames: int | None, overlap_history: int | None, causal_block_size: int
) -> list[Window]:
    """The windows `SkyReelsV2DiffusionForcingPipeline.__call__`/`prepare_latents` run, exactly, including
    what they round or truncate; `num_frames` as the pipeline rounds it (4k + 1). Refuses nothing."""
    total = latent_frames(num_frames)
    if not is_long_video(num_frames, base_num_frames, overlap_history):
        return [Window(total, 0)]
    assert base_num_frames is not None and overlap_history is not None  # is_long_video says so
    base, overlap = latent_frames(base_num_frames), latent_frames(overlap_history)
    n_iter = 1 + (total - base - 1) // (base - overlap) + 1
    # prepare_latents cuts the carried-over prefix down to whole causal blocks.
    prefix = overlap - overlap % causal_block_size
    windows = [Window(base, 0)]
    for it in range(1, n_iter):
        finished = it * (base - overlap) + overlap
        windows.append(Window(min(total - finished + overlap, base), prefix, overlap))
    return windows


def plan_windows(
    num_frames: int, base_num_frames: int, overlap_history: int | None, causal_block_size: int
) -> list[Window]:
    """`pipeline_windows`, or ValueError naming the field whose rule is broken: refuses what the pipeline
    would silently round (num_frames), truncate (overlap prefix) or leave undenoised (frames past the
    last whole causal block)."""
    total = latent_frames(num_frames)
    if not is_long_video(num_frames, base_num_frames, overlap_history):
        if total % causal_block_size:
            raise ValueError(
                f"causal_block_size: must divide the latent frame count {total} "
                f"(= (num_frames - 1) / 4 + 1 for num_frames={num_frames})"
            )
        return pipeline_windows(num_frames, base_num_frames, overlap_history, causal_block_size)
    assert overlap_history is not None  # is_long_video says so
    base = latent_frames(base_num_frames)
    overlap = latent_frames(overlap_history)
    if base % causal_block_size:
        raise ValueError(
            f"causal_block_size: must divide the base window's latent frame count {base} "
            f"(= (base_num_frames - 1) / 4 + 1 for base_num_frames={base_num_frames})"
        )
    if overlap >= base:
        raise ValueError(
            f"overlap_history: must be shorter than base_num_frames ({overlap} latent frames overlap "
            f"a {base}-frame window)"
        )
    if overlap % causal_block_size:
        raise ValueError(
            f"overlap_history: its latent frame count {overlap} (= (overlap_history - 1) / 4 + 1) "
            f"must be a multiple of causal_block_size={causal_block_size}"
        )
    windows = pipeline_windows(num_frames, base_num_frames, overlap_history, causal_block_size)
    for w in windows[1:]:
        if w.latent_frames % causal_block_size:
            raise ValueError(
                f"num_frames: the last long-video window would hold {w.latent_frames} latent frames, not a "
                f"multiple of causal_block_size={causal_block_size}; choose num_frames so that "
                f"(latent frames - {base}) is a multiple of {base - overlap}, or adjust overlap_history"
            )
    return windows


def output_frames(windows: list[Window]) -> int:
    """Pixel frames in the decoded video: overlap frames are counted once."""
    latents = sum(w.latent_frames - w.overlap_frames for w in windows)
    return (latents - 1) * VAE_TEMPORAL + 1
