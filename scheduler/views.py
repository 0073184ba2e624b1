"""Job records as the API shows them: links re-signed on every read, never handed out expired."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from shared.catalog import MODEL_SLUG
from shared.jobs import JobRecord, now
from shared.schemas import JobLinks, JobView, VideoResult
from shared.webhooks import job_deliveries


def signed_result(app: FastAPI, job: JobRecord) -> VideoResult | None:
    """The result with links signed now; none once the files are past retention."""
    result = job.result
    if result is None or job.finished_at is None:
        return result
    retained_until = job.finished_at + timedelta(days=app.state.settings.retention_days)
    if now() >= retained_until:
        return result.model_copy(update={"retained_until": retained_until})
    storage = app.state.storage
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


def job_view(app: FastAPI, job: JobRecord) -> JobView:
    base = app.state.settings.public_base_url.rstrip("/")
    result = signed_result(app, job)
    return JobView(
        id=job.id,
        status=job.status.value,
        model=str(job.request.get("model", MODEL_SLUG)),
        model_version=str(job.request["model_version"]),
        queue_position=app.state.store.queue_position(job),
        gpu_type=job.gpu_type,
        region=job.region,
        worker=job.worker,
        attempts=job.attempts,
        progress=job.progress,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        start_deadline_at=job.start_deadline_at,
        timeout_s=job.timeout_s,
        timings=job.timings,
        result=result,
        error=job.error,
        links=JobLinks(self=f"{base}/v1/jobs/{job.id}", video=result.video_url if result else None),
        request=job.request,
        batch_id=job.batch_id,
        webhooks=job_deliveries(app.state.store.r, job),
    )
