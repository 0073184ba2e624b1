"""A small HTTP client of the ReelForge API, used by the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from shared.catalog import MODEL_SLUG
from shared.states import JobStatus


class ApiError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error", body) if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {error}")
        self.status = status
        self.body = body


class Client:
    def __init__(self, base_url: str, api_key: str, timeout_s: float = 30) -> None:
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout_s
        )

    def _json(self, response: httpx.Response) -> Any:
        body = response.json() if response.content else None
        if response.status_code >= 400:
            raise ApiError(response.status_code, body)
        return body

    def submit(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self._json(self.http.post(f"/v1/inference/{MODEL_SLUG}", json=payload))

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json(self.http.get(f"/v1/jobs/{job_id}"))

    def wait(
        self,
        job_id: str,
        on_update: Callable[[dict[str, Any]], None],
        poll_s: float = 0.5,
        timeout_s: float = 3600,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            on_update(job)
            if JobStatus(job["status"]).terminal:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s:.0f}s")
            time.sleep(poll_s)

    def submit_batch_jsonl(
        self, jsonl: str | bytes, defaults: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A batch from a JSONL document, one request per line."""
        params = {"defaults": json.dumps(defaults)} if defaults else None
        headers = {"Content-Type": "application/x-ndjson"}
        return self._json(self.http.post("/v1/batches", content=jsonl, params=params, headers=headers))

    def batch(self, batch_id: str) -> dict[str, Any]:
        return self._json(self.http.get(f"/v1/batches/{batch_id}"))

    def wait_batch(
        self,
        batch_id: str,
        on_update: Callable[[dict[str, Any]], None],
        poll_s: float = 1.0,
        timeout_s: float = 24 * 3600,
    ) -> dict[str, Any]:
        """Poll until every job has ended and the manifest is available."""
        deadline = time.monotonic() + timeout_s
        while True:
            batch = self.batch(batch_id)
            on_update(batch)
            if batch["status"] == "completed":
                return batch
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch_id} still {batch['status']} after {timeout_s:.0f}s")
            time.sleep(poll_s)

    def download(self, url: str, path: Path) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        with httpx.stream("GET", url, timeout=120, follow_redirects=True) as response:
            response.raise_for_status()
            with open(path, "wb") as f:
                for chunk in response.iter_bytes():
                    size += f.write(chunk)
        return size
