"""Job records as the API shows them: links re-signed on every read, never handed out expired."""

from __future__ import annotations

from fastapi import FastAPI

from shared.catalog import MODEL_SLUG
from shared.jobs import JobRecord
from shared.schemas import JobLinks, JobView


def job_view(app: FastAPI, job: JobRecord) -> JobView:
    base = app.state.settings.public_base_url.rstrip("/")
    result = job.result
    if result is not None:
        url, expires = app.state.storage.url(result.storage_key)
        result = result.model_copy(update={"video_url": url, "video_url_expires_at": expires})
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
    )
