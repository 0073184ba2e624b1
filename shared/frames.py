"""Frame arithmetic of diffusion forcing: latent frames, long-video windows, causal blocks.

Pure functions shared by the API (to refuse what the pipeline would silently round or truncate)
and the worker (to know how many denoising iterations a job has).
"""

from __future__ import annotations

from dataclasses import dataclass

VAE_TEMPORAL = 4


def latent_frames(num_frames: int) -> int:
    return (num_frames - 1) // VAE_TEMPORAL + 1


@dataclass(frozen=True)
class Window:
    """One autoregressive window of a (possibly long) video, in latent frames."""

    latent_frames: int
    prefix_frames: int
    """Frames carried over from the previous window (already denoised)."""


def plan_windows(
    num_frames: int, base_num_frames: int, overlap_history: int | None, causal_block_size: int
) -> list[Window]:
    """The windows the pipeline will run, or ValueError naming the field whose rule is broken.

    Mirrors `SkyReelsV2DiffusionForcingPipeline.__call__`/`prepare_latents`, but refuses what they
    would silently round (num_frames), truncate (overlap prefix) or leave undenoised (frames past the
    last whole causal block).
    """
    total = latent_frames(num_frames)
    if overlap_history is None or num_frames <= base_num_frames:
        if total % causal_block_size:
            raise ValueError(
                f"causal_block_size: must divide the latent frame count {total} "
                f"(= (num_frames - 1) / 4 + 1 for num_frames={num_frames})"
            )
        return [Window(total, 0)]
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
    n_iter = 1 + (total - base - 1) // (base - overlap) + 1
    windows = [Window(base, 0)]
    for it in range(1, n_iter):
        finished = it * (base - overlap) + overlap
        length = min(total - finished + overlap, base)
        if length % causal_block_size:
            raise ValueError(
                f"num_frames: the last long-video window would hold {length} latent frames, not a multiple "
                f"of causal_block_size={causal_block_size}; choose num_frames so that "
                f"(latent frames - {base}) is a multiple of {base - overlap}, or adjust overlap_history"
            )
        windows.append(Window(length, overlap))
    return windows


def output_frames(windows: list[Window]) -> int:
    """Pixel frames in the decoded video: overlap frames are counted once."""
    latents = windows[0].latent_frames + sum(w.latent_frames - w.prefix_frames for w in windows[1:])
    return (latents - 1) * VAE_TEMPORAL + 1
