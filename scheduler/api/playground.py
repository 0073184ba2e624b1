"""`GET /playground`: one static page (no build step, no framework) to try the model from a browser.

The page reads the inputs' defaults and limits from `/openapi.json`, the targets from the runtime
routes, and follows the job on its event stream; the API key stays in the tab's `sessionStorage`.
The only thing filled in here is what the schema cannot say: the versions this deployment serves and
the request the form starts from.
"""

from __future__ import annotations

import json
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from scheduler.api.deps import ServicesDep
from shared.catalog import CATALOG_REQUEST, CPU_REQUEST, MODEL_SLUG

router = APIRouter(include_in_schema=False)

PAGE = files("scheduler.api") / "static" / "playground.html"


@router.get("/playground")
def playground(services: ServicesDep) -> HTMLResponse:
    served = sorted({v for p in services.settings.pools for v in p.model_versions})
    start = CPU_REQUEST if CPU_REQUEST["model_version"] in served else CATALOG_REQUEST
    config = {"slug": MODEL_SLUG, "versions": served, "request": start}
    # `</` cannot close the script element from inside the JSON.
    inline = json.dumps(config).replace("</", "<\\/")
    html = PAGE.read_text(encoding="utf-8").replace("/*CONFIG*/null", inline)
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    return HTMLResponse(html, headers=headers)
