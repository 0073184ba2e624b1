"""Idempotency-Key reservations against a real Redis: jobs and batches apart, and a job's reservation
written before batches had keys still found."""

from __future__ import annotations

import json

import pytest
import redis

from scheduler.idempotency import IdempotencyStore, body_hash
from shared import keys
from shared.errors import InvalidInput


def test_a_job_and_a_batch_may_share_a_key(redis_client: redis.Redis) -> None:
    store = IdempotencyStore(redis_client, ttl_s=60)
    assert store.reserve("o", "k", {"prompt": "a"}, "job-1").new
    assert store.reserve("o", "k", [{"prompt": "a"}], "batch-1", kind="batch").new
    again = store.reserve("o", "k", [{"prompt": "a"}], "batch-2", kind="batch")
    assert (again.new, again.id) == (False, "batch-1")
    with pytest.raises(InvalidInput, match="batch batch-1"):
        store.reserve("o", "k", [{"prompt": "b"}], "batch-3", kind="batch")


def test_a_reservation_of_the_earlier_form_is_still_found(redis_client: redis.Redis) -> None:
    body = {"prompt": "a"}
    old = json.dumps({"body": body_hash(body), "job_id": "job-0"})
    redis_client.set(keys.idempotency("o", "job", "k"), old)
    held = IdempotencyStore(redis_client, ttl_s=60).reserve("o", "k", body, "job-1")
    assert (held.new, held.id) == (False, "job-0")
