"""The one rule for bringing workers back, followed by the embedded supervisor and, on Kubernetes,
mirrored by the KEDA trigger on the pool's queue (minReplicaCount 0, activation at one job).

Workers go away by themselves after their idle timeout; only this rule brings them back.
"""

from __future__ import annotations


def needs_worker(queued_jobs: int, prewarm_requested: bool, live_workers: int, starting_workers: int) -> bool:
    """Start a worker when a pool has queued work (or a prewarm) and no worker, live or starting."""
    return (queued_jobs > 0 or prewarm_requested) and live_workers + starting_workers == 0
