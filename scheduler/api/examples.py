"""Request examples shown in the OpenAPI docs, taken from the catalog's own example request."""

from __future__ import annotations

from typing import Any

from fastapi.openapi.models import Example

from shared.catalog import CATALOG_REQUEST, CPU_REQUEST

SUBMIT_EXAMPLES: dict[str, Example] = {
    "catalog": Example(
        summary="The catalog's example request (1.3B, 960x544, 97 frames)", value=dict(CATALOG_REQUEST)
    ),
    "cpu": Example(
        summary="The same, sized for the CPU worker of the embedded stack", value=dict(CPU_REQUEST)
    ),
}

START_EXAMPLE: dict[str, Any] = {
    "version": CATALOG_REQUEST["model_version"],
    "gpu_type": "B200",
    "region": "us-central1",
    "run_until_stopped": False,
}
