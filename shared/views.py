"""A job as users see it, built in one place for the API and for webhook payloads.

Links are signed when the view is built, so none is handed out expired; past retention none is
handed out at all.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.catalog import MODEL_SLUG
from shared.jobs import JobRecord, now
from shared.schemas import JobLinks, JobView, VideoResult, WebhookDelivery
from shared.settings import Settings
from shared.storage import Storage, preview_key


def signed_result(job: JobRecord, settings: Settings, storage: Storage) -> VideoResult | None:
    """The result with links signed now; without links once the files are past retention."""
    result = job.result
    if result is None or job.finished_at is None:
        return result
    retained_until = job.finished_at + timedelta(days=settings.retention_days)
    if now() >= retained_until:
        return result.model_copy(update={"retained_until": retained_until})
    url, expires = storage.url(result.storage_key)
    return result.model_copy(
        update={
            "video_url": url,
            "video_url_expires_at": expires,
            "poster_url": storage.url(result.poster_key)[0] if result.poster_key else None,
            "sidecar_url": storage.url(result.sidecar_key)[0] if result.sidecar_key else None,
            "retained_until": retained_until,
        }
    )


def signed_preview(job: JobRecord, settings: Settings, storage: Storage) -> str | None:
    """A link to the job's preview signed now; none before there is one or past retention."""
    if job.preview is None:
        return None
    if job.finished_at is not None and now() >= job.finished_at + timedelta(days=settings.retention_days):
        return None
    return storage.url(job.preview.storage_key)[0]


def render_job(
    job: JobRecord,
    settings: Settings,
    storage: Storage,
    *,
    queue_position: int | None = None,
    webhooks: list[WebhookDelivery] | None = None,
) -> JobView:
    base = settings.public_base_url.rstrip("/")
    result = signed_result(job, settings, storage)
    return JobView(
        id=job.id,
        status=job.status.value,
        model=str(job.request.get("model", MODEL_SLUG)),
        model_version=str(job.request["model_version"]),
        queue_position=queue_position,
        gpu_type=job.gpu_type,
        region=job.region,
        worker=job.worker,
        attempts=job.attempts,
        attempt_history=job.attempt_history,
        progress=job.progress,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        start_deadline_at=job.start_deadline_at,
        timeout_s=job.timeout_s,
        timings=job.timings,
        result=result,
        error=job.error,
        preview_url=signed_preview(job, settings, storage),
        preview_frames=job.preview.frames if job.preview else 0,
        links=JobLinks(self=f"{base}/v1/jobs/{job.id}", video=result.video_url if result else None),
        request=job.request,
        batch_id=job.batch_id,
        webhooks=webhooks or [],
    )


def resign_links(view: dict[str, Any], storage: Storage) -> dict[str, Any]:
    """A rendered job (as JSON) with its result links signed again now: webhook retries can come
    hours after the event, and the links they carry must still work."""
    if view.get("preview_url"):
        view = view | {"preview_url": storage.url(preview_key(view["id"]))[0]}
    result = view.get("result")
    if not result or not result.get("video_url"):
        return view
    url, expires = storage.url(result["storage_key"])
    fresh = result | {"video_url": url, "video_url_expires_at": expires.isoformat().replace("+00:00", "Z")}
    for name in ("poster", "sidecar"):
        if result.get(f"{name}_key"):
            fresh[f"{name}_url"] = storage.url(result[f"{name}_key"])[0]
    return view | {"result": fresh, "links": view["links"] | {"video": url}}
