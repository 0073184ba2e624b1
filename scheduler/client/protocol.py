"""What the blocking and the asyncio clients share: the calls they make (method, path, body, headers),
the retry rule, the error types, and the decoding of the job event stream. No I/O here."""

from __future__ import annotations

import json
import os
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.backoff import backoff_s
from shared.catalog import MODEL_SLUG
from shared.schemas import JobView, Progress
from shared.states import TERMINAL

DEFAULT_API_BASE = "http://127.0.0.1:8000"
DEFAULT_API_KEY = "rf-dev-key"
"""The embedded stack's key (`reelforge dev`); anything else needs REELFORGE_API_KEY."""
RETRY_STATUSES = frozenset({429, 503})
ENDED = frozenset(s.value for s in TERMINAL)
STREAM_TIMEOUT = httpx.Timeout(30, read=None)
"""An event stream may be quiet between heartbeats: no read timeout, a connect timeout still."""
Batch = dict[str, Any]
"""`GET /v1/batches/{id}` as JSON (see the API's OpenAPI, `BatchView`)."""
ManifestLines = list[dict[str, Any]]
"""A batch manifest's lines: `{line, job_id, status, storage_key, video_url, error, ...}`."""


def connection(api_base: str | None, api_key: str | None, timeout_s: float) -> dict[str, Any]:
    """httpx client options for one API and key: those given, else the environment's, else the
    embedded stack's."""
    base = api_base or os.environ.get("REELFORGE_API_BASE") or DEFAULT_API_BASE
    key = api_key or os.environ.get("REELFORGE_API_KEY") or DEFAULT_API_KEY
    return {"base_url": base.rstrip("/"), "headers": {"Authorization": f"Bearer {key}"}, "timeout": timeout_s}


class ReelForgeError(RuntimeError):
    """An error answer of the API, as one line: `<code>: <message>` (the HTTP status in `status`)."""

    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.body = body
        self.code: str = error.get("code") or f"http_{status}"
        self.message: str = error.get("message") or (str(body) if body else f"HTTP {status}")
        super().__init__(f"{self.code}: {self.message}")

    @classmethod
    def of(cls, response: httpx.Response) -> ReelForgeError:
        """The error a read response carries."""
        try:
            body = response.json()
        except ValueError:
            body = response.text
        return cls(response.status_code, body)


class JobFailed(RuntimeError):
    """`run` found the job ended without a video (failed, canceled or expired)."""

    def __init__(self, job: JobView) -> None:
        self.job = job
        detail = f"{job.error.code}: {job.error.message}" if job.error else job.status
        super().__init__(f"job {job.id} {job.status}: {detail}")


def video_url(job: JobView) -> str:
    """The ended job's video link; JobFailed when it ended without one."""
    if job.status != "succeeded" or job.result is None or not job.result.video_url:
        raise JobFailed(job)
    return job.result.video_url


@dataclass
class Call:
    """One request of the API: what both clients send, and retry alike."""

    method: str
    path: str
    options: dict[str, Any] = field(default_factory=dict)
    """httpx request options: json, content, params, headers, timeout."""


def _new_key() -> str:
    return f"rf-client-{uuid.uuid4()}"


def submit_call(
    request: dict[str, Any] | None,
    fields: dict[str, Any],
    wait_s: float | None,
    idempotency_key: str | None,
    read_timeout_s: float | None,
) -> Call:
    """A submission. It always carries an `Idempotency-Key` (one per call, the same on each retry),
    so a retried submission never makes a second job; `wait_s` asks the API to hold the answer."""
    headers = {"Idempotency-Key": idempotency_key or _new_key()}
    options: dict[str, Any] = {"json": {**(request or {}), **fields}, "headers": headers}
    if wait_s is not None:
        headers["Prefer"] = f"wait={wait_s:g}"
        # Only here: an httpx timeout of None would mean no timeout at all, not the client's.
        options["timeout"] = wait_s + (read_timeout_s or 0)
    return Call("POST", f"/v1/inference/{MODEL_SLUG}", options)


@dataclass
class Listing:
    """A listing read page by page: `GET path` with `filters`, the items under `items_key`."""

    path: str
    items_key: str
    page_size: int
    filters: dict[str, Any] = field(default_factory=dict)

    def page(self, cursor: str | None) -> Call:
        params = {"limit": self.page_size, **{k: v for k, v in self.filters.items() if v is not None}}
        if cursor:
            params["cursor"] = cursor
        return Call("GET", self.path, {"params": params})

    def take(self, page: dict[str, Any], seen: int, limit: int | None) -> tuple[list[Any], str | None]:
        """This page's items within `limit` (`seen` taken before), and the next cursor (None: done)."""
        items = page[self.items_key]
        if limit is not None:
            items = items[: max(limit - seen, 0)]
            if seen + len(items) >= limit:
                return items, None
        return items, page.get("next_cursor")


def jobs_listing(status: str | None, page_size: int) -> Listing:
    return Listing("/v1/jobs", "jobs", page_size, {"status": status})


def batches_listing(page_size: int) -> Listing:
    return Listing("/v1/batches", "batches", page_size)


def batch_call(requests: list[dict[str, Any]], defaults: dict[str, Any] | None) -> Call:
    """A batch submission; like a job's, it carries an `Idempotency-Key` kept across retries."""
    body = {"defaults": defaults or {}, "requests": requests}
    return Call("POST", "/v1/batches", {"json": body, "headers": {"Idempotency-Key": _new_key()}})


def batch_jsonl_call(jsonl: str | bytes, defaults: dict[str, Any] | None) -> Call:
    params = {"defaults": json.dumps(defaults)} if defaults else None
    headers = {"Content-Type": "application/x-ndjson", "Idempotency-Key": _new_key()}
    return Call("POST", "/v1/batches", {"content": jsonl, "params": params, "headers": headers})


def events_path(job_id: str) -> str:
    return f"/v1/jobs/{job_id}/events"


def manifest_lines(text: str) -> ManifestLines:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass
class Backoff:
    """When to try again: 429 and 503 (after their `Retry-After`) and connection errors, with
    exponential backoff and jitter, up to `max_retries` times."""

    max_retries: int = 5
    base_s: float = 0.5
    max_s: float = 30.0

    def after_error(self, attempt: int) -> float | None:
        """Seconds to wait after a connection error on try `attempt`; None: give up."""
        return None if attempt > self.max_retries else self.delay(attempt, None)

    def after_answer(self, attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before trying again after this answer; None: it is the answer."""
        if response.status_code not in RETRY_STATUSES or attempt > self.max_retries:
            return None
        return self.delay(attempt, response.headers.get("retry-after"))

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """`Retry-After` when the server says it; else doubling from `base_s`, capped, with jitter."""
        if retry_after is not None:
            try:
                return min(float(retry_after), self.max_s)
            except ValueError:
                pass
        return backoff_s(attempt, self.base_s, self.max_s, random.random())


def body_of(response: httpx.Response) -> Any:
    """The JSON of a final answer; ReelForgeError when it is an error."""
    if response.status_code >= 400:
        raise ReelForgeError.of(response)
    return response.json() if response.content else None


@dataclass
class JobEvent:
    """One Server-Sent Event of `GET /v1/jobs/{id}/events`."""

    type: str
    """`status`, `progress` or `completed`."""
    id: str
    """Its place in the job's stream (what `Last-Event-ID` resumes after)."""
    job_id: str
    status: str
    job: JobView | None = None
    """The whole job, on `status` and `completed`."""
    progress: Progress | None = None


class EventReader:
    """Decodes the job's event stream line by line, and remembers where to resume after a drop."""

    def __init__(self, last_event_id: str | None = None) -> None:
        self.last_event_id = last_event_id
        self.fields: dict[str, str] = {}
        self.failures = 0

    def headers(self) -> dict[str, str]:
        return {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}

    def feed(self, line: str) -> JobEvent | None:
        """The event that this line ends, if it ends one (a blank line ends an event)."""
        if line.startswith(":"):
            return None  # a heartbeat
        if line:
            name, _, value = line.partition(":")
            self.fields[name] = self.fields.get(name, "") + value.removeprefix(" ")
            return None
        fields, self.fields = self.fields, {}
        if "data" not in fields:
            return None
        data = json.loads(fields["data"])
        kind = fields.get("event", "message")
        job = JobView.model_validate(data) if kind != "progress" else None
        progress = job.progress if job else Progress.model_validate(data["progress"] or {})
        self.failures, self.last_event_id = 0, fields.get("id", "")
        return JobEvent(kind, self.last_event_id, data["id"], data["status"], job, progress)

    def dropped(self, backoff: Backoff) -> float | None:
        """Seconds to wait before resuming after the connection dropped; None: give up."""
        self.fields = {}  # half an event, cut by the drop: the resumed stream sends it whole
        self.failures += 1
        return backoff.after_error(self.failures)
