"""The one rule for bringing workers back, followed by the embedded supervisor and, on Kubernetes,
by KEDA: it is KEDA's ScaledJob decision with the settings of `k8s/worker/scaledjob.yaml` (Redis list
trigger on the pool's queue, `listLength: 1`, `activationListLength: 0`, `minReplicaCount: 0`, the
`accurate` scaling strategy, `pendingPodConditions: [Ready]`). `tests/integration/
test_scaling_agreement.py` drives this rule and KEDA's algorithm with the same inputs.

Workers go away by themselves after their idle timeout; only this rule brings them back.
"""

from __future__ import annotations


def workers_to_start(waiting: int, running: int, pending: int, max_workers: int) -> int:
    """How many workers to start for a pool now.

    `waiting`: messages in the pool's broker list, jobs and prewarms (`reelforge.warmup`) alike. A task
    a worker runs has left the list (acks_late keeps it in the unacked hash), so it is not waiting.
    `running`: workers alive or starting (KEDA: the pool's Jobs not finished). `pending`: those of them
    not consuming yet (KEDA: Jobs whose pod is not Ready). `max_workers`: KEDA's `maxReplicaCount`.

    KEDA's `accurate` strategy, which its docs recommend when the queue length leaves out the messages
    being processed (as a Redis list does): one worker per waiting message, less those already starting,
    within `max_workers`. Near the cap it fills up to the cap without deducting starting workers, as KEDA
    does; such an extra worker finds nothing and leaves after its idle timeout.
    """
    if waiting <= 0:  # activationListLength 0: an empty list is inactive, nothing is created
        return 0
    wanted = min(waiting, max_workers)  # ceil(waiting / listLength) capped at maxReplicaCount
    room = max_workers - running if wanted + running > max_workers else wanted - pending
    return max(0, min(waiting, room))
