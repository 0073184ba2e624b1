"""What a committed job move owes (the outbox), written with the move, and carried out once by the relay
however often the entry is read: the window where a terminal move committed and its event was lost
(the process died before an after-commit listener ran) no longer exists."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from shared import keys
from shared.broker import make_celery
from shared.errors import ErrorCode, InvalidTransition
from shared.jobs import JobRecord
from shared.jobstore import JobStore
from shared.outbox import OutboxEntry, event_for
from shared.relay import Relay, delivery_id
from shared.schemas import Progress, WebhookEvent
from shared.settings import Settings
from shared.states import JobStatus
from shared.storage import LocalStorage
from shared.webhooks.deliveries import DeliveryStore


def _job(status: JobStatus, step: int = 0) -> JobRecord:
    job = JobRecord(id="j", owner="o", request={}, gpu_type="CPU", region="local", queue="q", status=status)
    job.progress = Progress(step=step, total=4)
    return job


@pytest.mark.parametrize(
    ("after", "before", "step", "event"),
    [
        (JobStatus.RUNNING, JobStatus.QUEUED, 0, "started"),
        (JobStatus.RUNNING, JobStatus.RUNNING, 2, "progress"),
        (JobStatus.RUNNING, JobStatus.RUNNING, 0, None),  # a takeover by another worker
        (JobStatus.SUCCEEDED, JobStatus.RUNNING, 4, "completed"),
        (JobStatus.FAILED, JobStatus.RUNNING, 1, "completed"),
        (JobStatus.CANCELED, JobStatus.QUEUED, 0, "completed"),
        (JobStatus.EXPIRED, JobStatus.QUEUED, 0, "completed"),
    ],
)
def test_events_from_state_changes(after: JobStatus, before: JobStatus, step: int, event: str | None) -> None:
    assert event_for(_job(after, step), before) == event


def _store_with_webhook_job(redis_client: redis.Redis, job_id: str = "j1") -> JobStore:
    store = JobStore(redis_client, ttl_s=600)
    request = {"model_version": "tiny-random", "webhook_url": "http://127.0.0.1:9/hook",
               "webhook_events_filter": ["started", "completed"]}  # fmt: skip
    store.create(JobRecord(id=job_id, owner="o", request=request, gpu_type="CPU", region="x", queue="q"))
    return store


def outbox(r: redis.Redis) -> list[OutboxEntry]:
    return [OutboxEntry.model_validate_json(f["entry"]) for _, f in r.xrange(keys.OUTBOX)]


def test_the_event_is_committed_with_the_move(redis_client: redis.Redis) -> None:
    store = _store_with_webhook_job(redis_client)
    store.start("j1", "w1")
    # The process could die now: the move and its event were committed together.
    store.finish("j1", "w1", JobStatus.SUCCEEDED)
    assert [(e.id, e.event) for e in outbox(redis_client)] == [
        ("j1:started:1", WebhookEvent.STARTED),
        ("j1:completed", WebhookEvent.COMPLETED),
    ]
    assert JobRecord.model_validate_json(outbox(redis_client)[1].record).status == JobStatus.SUCCEEDED


def test_a_refused_move_writes_no_event(redis_client: redis.Redis) -> None:
    store = _store_with_webhook_job(redis_client)
    store.end("j1", JobStatus.CANCELED, ErrorCode.CANCELED, "canceled")
    with pytest.raises(InvalidTransition):
        store.end("j1", JobStatus.CANCELED, ErrorCode.CANCELED, "again")
    assert [e.id for e in outbox(redis_client)] == ["j1:completed"]


def test_the_relay_carries_each_entry_out_once(
    redis_client: redis.Redis, tmp_path: Path, redis_url: str
) -> None:
    settings = Settings(_env_file=None, redis_url=redis_url, storage_dir=tmp_path)  # type: ignore[call-arg]
    relay = Relay(redis_client, settings, LocalStorage(settings), make_celery(settings))
    store = _store_with_webhook_job(redis_client)
    store.end("j1", JobStatus.CANCELED, ErrorCode.CANCELED, "canceled")
    entry = outbox(redis_client)[0]
    assert relay.run_once("relay-a") == 1
    relay.carry_out(entry)  # read again: a reader that died before its acknowledgement
    deliveries = DeliveryStore(redis_client, 600).for_job("j1")
    assert [(d.id, d.type) for d in deliveries] == [(delivery_id("j1:completed"), "job.completed")]
    assert redis_client.llen(keys.WEBHOOK_QUEUE) == 1  # one first attempt queued, not two
    assert redis_client.xlen(keys.OUTBOX) == 0


def test_an_entry_whose_reader_died_is_claimed_again(
    redis_client: redis.Redis, tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(_env_file=None, redis_url=redis_url, storage_dir=tmp_path)  # type: ignore[call-arg]
    relay = Relay(redis_client, settings, LocalStorage(settings), make_celery(settings))
    store = _store_with_webhook_job(redis_client)
    store.end("j1", JobStatus.CANCELED, ErrorCode.CANCELED, "canceled")
    relay._ensure_group()
    # Reader "dead" reads the entry and dies before carrying it out.
    redis_client.xreadgroup(keys.OUTBOX_GROUP, "dead", {keys.OUTBOX: ">"}, count=10)
    monkeypatch.setattr("shared.relay.CLAIM_IDLE_MS", 0)
    assert relay.run_once("alive") == 1
    assert len(DeliveryStore(redis_client, 600).for_job("j1")) == 1
