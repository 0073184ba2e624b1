"""Job records as the API shows them: links re-signed on every read, never handed out expired."""

from __future__ import annotations

from fastapi import FastAPI

from shared.jobs import JobRecord
from shared.schemas import JobView
from shared.views import render_job
from shared.webhooks.deliveries import job_deliveries


def job_view(app: FastAPI, job: JobRecord) -> JobView:
    store = app.state.store
    return render_job(
        job,
        app.state.settings,
        app.state.storage,
        queue_position=store.queue_position(job),
        webhooks=job_deliveries(store.r, job),
    )
