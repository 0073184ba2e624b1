"""One answer for a target no configured pool serves, on every route that names one: 422 `no_capacity`
naming the field, what is served, and the setting that fixes it (REELFORGE_POOLS)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.support import ROUTE, SMALL_REQUEST

pytestmark = pytest.mark.integration

FAMILY = "/v1/model-families/skywork-skyreels-v2"
MODELS = "/v1/models/skywork-skyreels-v2"
# tiny-random is served on CPU pools only; df-14b-720p by no pool of the test stack.
ON_H200 = {"model_version": "tiny-random", "gpu_type": "H200"}
UNSERVED_VERSION = {"model_version": "df-14b-720p-diffusers"}


def calls(target: dict[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
    version = target["model_version"]
    family = {"version": version} | {k: v for k, v in target.items() if k != "model_version"}
    submit = SMALL_REQUEST | {"region": None} | target
    if version != "tiny-random":
        submit |= {"width": 1280, "height": 720, "num_frames": 97}
    return [
        ("POST", ROUTE, {"json": {k: v for k, v in submit.items() if v is not None}}),
        ("GET", f"{MODELS}/inference-routes", {"params": target}),
        ("GET", f"{MODELS}/reliability", {"params": target}),
        ("GET", f"{MODELS}/run-estimate", {"params": target}),
        ("POST", f"{FAMILY}/start", {"json": family}),
        ("POST", f"{FAMILY}/stop", {"json": family}),
    ]


@pytest.mark.parametrize(
    ("target", "field"),
    [(ON_H200, "gpu_type"), (UNSERVED_VERSION, "model_version"), ({"model_version": "tiny-random",
                                                                    "region": "atlantis"}, "region")],
    ids=["gpu-type", "version", "region"],
)  # fmt: skip
def test_every_route_answers_no_capacity(api: httpx.Client, target: dict[str, str], field: str) -> None:
    for method, path, kwargs in calls(target):
        response = api.request(method, path, **kwargs)
        assert response.status_code == 422, (path, response.text)
        error = response.json()["error"]
        assert (error["code"], error["field"]) == ("no_capacity", field), (path, error)
        assert "REELFORGE_POOLS" in error["message"], (path, error)
    status = api.get(f"{FAMILY}/status", params={"version": "df-14b-720p-diffusers"})
    assert status.status_code == 422 and status.json()["error"]["code"] == "no_capacity"
