"""Pool choice policy (pure logic)."""

from __future__ import annotations

import pytest

from scheduler.routing import choose_pool
from shared.errors import NoCapacity
from shared.settings import PoolConfig

V = "df-1-3b-540p-diffusers"
POOLS = [
    PoolConfig(gpu_type="L40S", region="eu-north1", model_versions=[V]),
    PoolConfig(gpu_type="H200", region="eu-north2", model_versions=[V]),
    PoolConfig(gpu_type="B200", region="us-central1", model_versions=[V]),
    PoolConfig(gpu_type="H100", region="us-central1", model_versions=[V]),
    PoolConfig(gpu_type="CPU", region="local", model_versions=["tiny-random"]),
]


def test_fastest_by_catalog_when_nothing_is_live() -> None:
    assert choose_pool(POOLS, V, None, None, set()).gpu_type == "B200"


def test_live_worker_beats_faster_cold_pool() -> None:
    assert choose_pool(POOLS, V, None, None, {"reelforge.l40s.eu-north1"}).gpu_type == "L40S"


def test_named_gpu_type_and_region_are_honoured() -> None:
    assert choose_pool(POOLS, V, "H200", None, set()).queue == "reelforge.h200.eu-north2"
    assert choose_pool(POOLS, V, None, "us-central1", set()).gpu_type == "B200"
    assert choose_pool(POOLS, V, "H100", "us-central1", set()).gpu_type == "H100"


def test_unmeasured_gpu_ranks_last() -> None:
    pools = [p for p in POOLS if p.gpu_type in ("H100", "L40S")]
    assert choose_pool(pools, V, None, None, set()).gpu_type == "L40S"


def test_refusals_name_the_field() -> None:
    with pytest.raises(NoCapacity) as exc:
        choose_pool(POOLS, "df-14b-720p-diffusers", None, None, set())
    assert exc.value.field == "model_version"
    with pytest.raises(NoCapacity) as exc:
        choose_pool(POOLS, V, "RTX6000", None, set())
    assert exc.value.field == "gpu_type" and "B200/us-central1" in exc.value.message
    with pytest.raises(NoCapacity) as region:
        choose_pool(POOLS, V, None, "atlantis", set())
    assert region.value.field == "region"
    for refusal in (exc, region):
        assert "REELFORGE_POOLS" in refusal.value.message


def test_measured_speed_beats_catalog_rank() -> None:
    measured = {"reelforge.l40s.eu-north1": 90_000.0, "reelforge.h200.eu-north2": 120_000.0}
    assert choose_pool(POOLS, V, None, None, set(), measured).gpu_type == "L40S"
    assert choose_pool(POOLS, V, None, None, {"reelforge.h200.eu-north2"}, measured).gpu_type == "H200"
