"""`workers_to_start` is KEDA's decision for the ScaledJobs k8s/ renders, over every small state."""

from __future__ import annotations

import copy
import itertools

from shared.scaling import workers_to_start
from tests.deploy import keda_jobs_to_create, kustomize, pool_overlays


def test_the_rule_is_kedas_decision_for_the_rendered_scaled_jobs() -> None:
    specs = [d["spec"] for p in pool_overlays() for d in kustomize(p) if d["kind"] == "ScaledJob"]
    assert specs
    for spec in specs:
        for cap in (1, 2, spec["maxReplicaCount"], 7):
            capped = copy.deepcopy(spec) | {"maxReplicaCount": cap}
            for waiting, running in itertools.product(range(10), range(9)):
                for pending in range(running + 1):
                    keda = keda_jobs_to_create(capped, waiting, running, pending)
                    assert workers_to_start(waiting, running, pending, cap) == keda, (
                        cap, waiting, running, pending)  # fmt: skip


def test_named_cases() -> None:
    assert workers_to_start(waiting=1, running=0, pending=0, max_workers=4) == 1  # a prewarm, cold
    assert workers_to_start(waiting=0, running=1, pending=0, max_workers=4) == 0  # a job running
    assert workers_to_start(waiting=1, running=1, pending=1, max_workers=4) == 0  # its worker starts
    assert workers_to_start(waiting=3, running=1, pending=0, max_workers=4) == 3
    assert workers_to_start(waiting=3, running=1, pending=0, max_workers=1) == 0  # the laptop's cap
