"""Scheduler grouping: frames that share their whole schedule share one UniPC scheduler.

The pipeline keeps one scheduler per latent frame and steps each alone. Frames whose timestep, update
and in-interval columns agree over every iteration receive the same step calls with the same
timesteps, so their scheduler states are identical: one scheduler stepped on all of them at once gives
the same values (its arithmetic is elementwise), with its start index set from the host-side schedule
instead of a device lookup.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import SkyReelsV2DiffusionForcingPipeline
from torch import Tensor


@dataclass
class Group:
    """Contiguous frames [lo, hi) with identical schedules, stepped by one scheduler."""

    lo: int
    hi: int
    scheduler: Any


def scheduler_groups(
    pipe: SkyReelsV2DiffusionForcingPipeline,
    step_index: Tensor,
    update: Tensor,
    intervals: list[tuple[int, int]],
    steps: int,
    timesteps_cpu: Tensor,
    step_matrix_cpu: Tensor,
    device: torch.device,
) -> list[Group]:
    """One group per run of frames with equal schedules that the scheduler updates at least once."""
    frames = update.shape[1]
    pos = torch.arange(frames)
    inside = torch.stack([(pos >= s) & (pos < e) for s, e in intervals])
    columns = torch.cat([step_index, update.long(), inside.long()], dim=0)
    groups: list[Group] = []
    lo = 0
    for f in range(1, frames + 1):
        if f < frames and torch.equal(columns[:, f], columns[:, lo]):
            continue
        updated_at = update[:, lo].nonzero()
        if len(updated_at) > 0:
            scheduler = deepcopy(pipe.scheduler)
            scheduler.set_timesteps(steps, device=device)
            first_t = step_matrix_cpu[int(updated_at[0]), lo]
            scheduler.set_begin_index(scheduler.index_for_timestep(first_t, timesteps_cpu))
            groups.append(Group(lo, f, scheduler))
        lo = f
    return groups
