"""`/docs` and `/redoc` render from our own package, with no request leaving the machine, and the
OpenAPI they show documents auth, errors and the catalog's example request."""

from __future__ import annotations

import re

import httpx
import pytest

from shared.catalog import CATALOG_REQUEST
from tests.integration.support import ROUTE, Live

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(live: Live, page: str) -> None:
    html = httpx.get(f"{live.base}{page}").text
    urls = re.findall(r"""(?:src|href)=["']?([^"' >]+)""", html) + re.findall(r"url: ?['\"]([^'\"]+)", html)
    assert urls and not [u for u in urls if u.startswith(("http:", "https:", "//"))], urls
    for url in urls:
        asset = httpx.get(f"{live.base}{url}")
        assert asset.status_code == 200 and len(asset.content) > 100, url
    assert not re.search(r"https?://(?!127\.0\.0\.1)", html)


def test_openapi_documents_auth_errors_and_the_catalog_example(live: Live) -> None:
    spec = httpx.get(f"{live.base}/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    submit = spec["paths"][ROUTE]["post"]
    assert submit["security"] == [{"HTTPBearer": []}]
    examples = submit["requestBody"]["content"]["application/json"]["examples"]
    assert examples["catalog"]["value"] == CATALOG_REQUEST
    for status in ("200", "202", "401", "422", "429", "503"):
        assert status in submit["responses"], status
    assert submit["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    events = spec["paths"]["/v1/jobs/{job_id}/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert "200" in operation["responses"] or "202" in operation["responses"], (method, path)
