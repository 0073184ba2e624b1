"""The API process's services, built once: settings, the job store, the Celery app, storage, and the
stores the routes and the sweeper use."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery

from scheduler.events import JobFeed
from scheduler.idempotency import IdempotencyStore
from scheduler.metrics import Metrics
from shared.batchstore import BatchTracker
from shared.broker import make_celery
from shared.jobs import JobRecord
from shared.jobstore import JobStore
from shared.metrics import make_recorder
from shared.schemas import JobView
from shared.settings import Settings
from shared.storage import Storage, make_storage
from shared.views import render_job
from shared.webhooks.deliveries import job_deliveries
from shared.webhooks.signing import SecretStore


@dataclass
class Services:
    """The API process's connections and stores, created once in `create_app`."""

    settings: Settings
    store: JobStore
    celery: Celery
    storage: Storage
    idempotency: IdempotencyStore
    batches: BatchTracker
    secrets: SecretStore
    feed: JobFeed
    """Jobs' event streams, read on the event loop (SSE, `Prefer: wait`)."""
    metrics: Metrics

    @classmethod
    def build(cls, settings: Settings) -> Services:
        store = JobStore.from_url(settings.redis_url, settings.job_ttl_s, settings.max_attempts)
        celery = make_celery(settings)
        storage = make_storage(settings)
        # Best effort, after each commit: what GET /metrics reports (events go through the outbox).
        store.listeners.append(make_recorder(store.r))
        return cls(
            settings=settings,
            store=store,
            celery=celery,
            storage=storage,
            idempotency=IdempotencyStore(store.r, settings.idempotency_ttl_s),
            batches=BatchTracker(store.r, settings.job_ttl_s, storage),
            secrets=SecretStore(store.r, settings.webhook_secret_overlap_s),
            feed=JobFeed.from_url(settings.redis_url),
            metrics=Metrics(store.r, settings),
        )

    @property
    def redis(self) -> redis.Redis:
        return self.store.r

    def view(self, job: JobRecord) -> JobView:
        """The job as the API shows it: queue position, webhook deliveries, links signed now."""
        return render_job(
            job,
            self.settings,
            self.storage,
            queue_position=self.store.queue_position(job),
            webhooks=job_deliveries(self.store.r, job),
        )
