"""Every lifecycle ReelForge tracks, as an enum with the moves it allows, checked in one way.

Jobs (stored, moved under a Redis transaction), workers (published in heartbeats), webhook deliveries
(stored per attempt) and pools (derived from live workers on each read, never stored, so no moves).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from shared.errors import InvalidTransition

S = TypeVar("S", bound=StrEnum)


def check_move(moves: Mapping[S, frozenset[S]], current: S, to: S, what: str) -> S:
    """`to`, or InvalidTransition when the table does not allow `current -> to`."""
    if to not in moves[current]:
        raise InvalidTransition(f"{what}: cannot move from {current} to {to}")
    return to


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"
    """Not started before its start deadline."""

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.EXPIRED})

# RUNNING -> RUNNING is a redelivery: the worker that held the job died and another takes it over.
JOB_MOVES: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.EXPIRED}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED}
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELED: frozenset(),
    JobStatus.EXPIRED: frozenset(),
}


class JobPhase(StrEnum):
    """What a running job is doing now (its `progress.phase`); phases only move forward."""

    LOADING = "loading"
    """Loading the model version (a cold start)."""
    DENOISING = "denoising"
    """Iterations of the diffusion-forcing schedule (`progress.step` of `progress.total`)."""
    DECODING = "decoding"
    ENCODING = "encoding"
    UPLOADING = "uploading"


class WorkerState(StrEnum):
    STARTING = "starting"
    """Booting or loading a model version."""
    WARM = "warm"
    BUSY = "busy"
    STOPPING = "stopping"
    """Decided to shut down (idle): takes no new task."""


# A worker loading another version for a job goes back to STARTING; STOPPING is final.
WORKER_MOVES: dict[WorkerState, frozenset[WorkerState]] = {
    WorkerState.STARTING: frozenset(set(WorkerState)),
    WorkerState.WARM: frozenset(set(WorkerState)),
    WorkerState.BUSY: frozenset({WorkerState.STARTING, WorkerState.WARM, WorkerState.BUSY}),
    WorkerState.STOPPING: frozenset({WorkerState.STOPPING}),
}


class PoolState(StrEnum):
    """A pool's readiness for one model version, derived from its live workers on each read."""

    COLD = "cold"
    STARTING = "starting"
    WARM = "warm"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


DELIVERY_MOVES: dict[DeliveryStatus, frozenset[DeliveryStatus]] = {
    DeliveryStatus.PENDING: frozenset(set(DeliveryStatus)),
    DeliveryStatus.SUCCEEDED: frozenset(),
    DeliveryStatus.FAILED: frozenset(),
}
