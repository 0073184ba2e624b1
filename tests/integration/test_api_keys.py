"""Bearer keys over HTTP: missing, wrong, and another key's job."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.support import KEY_B, SMALL_REQUEST, Live

pytestmark = pytest.mark.integration

ROUTE = "/v1/inference/skywork-skyreels-v2"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic abc"}]
)
def test_missing_or_wrong_key_is_401_with_message(live: Live, headers: dict[str, str]) -> None:
    for method, path in (("POST", ROUTE), ("GET", "/v1/jobs"), ("GET", "/v1/jobs/abc")):
        response = httpx.request(method, live.base + path, headers=headers, json=SMALL_REQUEST)
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == "unauthorized"
        assert "Authorization: Bearer" in error["message"]


def test_a_key_sees_only_its_own_jobs(live: Live, api: httpx.Client) -> None:
    job = api.post(ROUTE, json=SMALL_REQUEST).json()
    with live.client(KEY_B) as other:
        response = other.get(f"/v1/jobs/{job['id']}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert job["id"] not in {j["id"] for j in other.get("/v1/jobs", params={"limit": 100}).json()["jobs"]}
    assert api.get(f"/v1/jobs/{job['id']}").status_code == 200


def test_health_needs_no_key_and_ready_checks_redis(live: Live) -> None:
    assert httpx.get(live.base + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(live.base + "/readyz")
    assert ready.status_code == 200 and ready.json()["redis"] == "ok"
