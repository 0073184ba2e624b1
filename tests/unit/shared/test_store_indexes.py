"""Request paths read indexes, never the keyspace: live workers per pool, the owner's jobs per status,
queued jobs by start deadline. Each test seeds unrelated keys that a scan would have to walk."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis

from scheduler.dev.stack import Stack, free_port
from shared import keys
from shared.fleet import Fleet, Heartbeat
from shared.jobs import JobRecord, now
from shared.jobstore import JobStore
from shared.states import JobStatus, WorkerState


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    stack = Stack(tmp_path_factory.mktemp("redis"))
    try:
        yield redis.Redis.from_url(stack.start_redis(free_port(), persist=False), decode_responses=True)
    finally:
        stack.stop()


@pytest.fixture
def store(client: redis.Redis) -> JobStore:
    client.flushdb()
    return JobStore(client, ttl_s=600)


class CountingRedis(redis.Redis):
    """Records each command's name, to show which commands a path sends."""

    sent: list[str]

    def execute_command(self, *args, **options):  # type: ignore[no-untyped-def]
        self.sent.append(str(args[0]).upper())
        return super().execute_command(*args, **options)


def beat(fleet: Fleet, name: str, queue: str, ttl_s: float) -> None:
    hb = Heartbeat(worker=name, queue=queue, gpu_type="CPU", region="x", state=WorkerState.WARM,
                   beat_at=time.time())  # fmt: skip
    fleet.beat(hb, ttl_s=ttl_s)


def test_live_workers_are_read_per_pool_without_scanning(store: JobStore) -> None:
    store.r.mset({f"unrelated:{i}": "1" for i in range(2000)})
    beat(store.fleet, "a", "q1", 30)
    beat(store.fleet, "b", "q2", 30)
    beat(store.fleet, "lapsing", "q1", 0.05)
    deadline = time.monotonic() + 5
    while store.r.exists(keys.worker("lapsing")):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    counting = CountingRedis(connection_pool=store.r.connection_pool)
    counting.sent = []
    live = Fleet(counting).live(["q1"])
    assert [hb.worker for hb in live] == ["a"]
    assert "SCAN" not in counting.sent and "KEYS" not in counting.sent
    assert {hb.worker for hb in store.fleet.live(["q1", "q2"])} == {"a", "b"}
    # The lapsed worker was pruned from its pool's index on that read.
    assert store.r.zrange(keys.pool_workers("q1"), 0, -1) == ["a"]
    store.fleet.forget("a", "q1")
    assert store.fleet.live(["q1"]) == []


def job(job_id: str, owner: str = "o", **fields: object) -> JobRecord:
    return JobRecord(id=job_id, owner=owner, request={"model_version": "tiny-random"}, gpu_type="CPU",
                     region="x", queue="q", **fields)  # type: ignore[arg-type]  # fmt: skip


def test_listing_by_status_reads_the_status_index(store: JobStore) -> None:
    for i in range(300):
        store.create(job(f"other{i}", owner="someone-else"))
    store.create(job("a", created_at=now() - timedelta(seconds=3)))
    store.create(job("b", created_at=now() - timedelta(seconds=2)))
    store.create(job("c", created_at=now() - timedelta(seconds=1)))
    store.update("b", lambda j: j.move(JobStatus.CANCELED))
    assert [j.id for j in store.list_for("o", status=JobStatus.QUEUED, limit=10, before=None)] == ["c", "a"]
    assert [j.id for j in store.list_for("o", status=JobStatus.CANCELED, limit=10, before=None)] == ["b"]
    assert [j.id for j in store.list_for("o", status=None, limit=2, before=None)] == ["c", "b"]
    assert store.r.zcard(keys.owner_jobs_in("o", "queued")) == 2
    assert store.r.zcard(keys.owner_jobs_in("o", "canceled")) == 1


def test_sweeper_expiry_reads_only_jobs_past_their_deadline(store: JobStore) -> None:
    soon = now() + timedelta(hours=1)
    for i in range(200):
        store.create(job(f"later{i}", start_deadline_at=soon))
    store.create(job("late", start_deadline_at=now() - timedelta(seconds=1)))
    store.create(job("started", start_deadline_at=now() - timedelta(seconds=1)))
    store.update("started", lambda j: j.move(JobStatus.RUNNING))
    assert store.expire_overdue() == ["late"]
    assert store.require("late").status == JobStatus.EXPIRED
    assert store.require("started").status == JobStatus.RUNNING
    assert store.r.zcard(keys.START_DEADLINES) == 200
