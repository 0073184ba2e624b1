"""The owner's batch index against a real Redis: only wholly queued batches are listed, newest first,
and batches past their TTL leave the index."""

from __future__ import annotations

import time

import redis

from shared import keys
from shared.batchstore import BatchStore


def test_only_queued_batches_are_listed_newest_first(redis_client: redis.Redis) -> None:
    store = BatchStore(redis_client, ttl_s=3600)
    created = [store.create(f"b{n}", "o", [f"j{n}"], [1]) for n in range(3)]
    store.mark_queued("b0", "o", created[0])
    store.mark_queued("b2", "o", created[2])  # b1 is still being submitted
    assert [b.id for b in store.list_for("o", 10, None)] == ["b2", "b0"]
    newest = store.list_for("o", 1, None)[0]
    assert [b.id for b in store.list_for("o", 10, newest.created_at.timestamp())] == ["b0"]
    assert store.list_for("someone else", 10, None) == []


def test_batches_past_their_ttl_leave_the_index(redis_client: redis.Redis) -> None:
    store = BatchStore(redis_client, ttl_s=3600)
    store.mark_queued("old", "o", store.create("old", "o", ["j"], [1]))
    redis_client.zadd(keys.owner_batches("o"), {"old": time.time() - 7200})  # as if made 2 h ago
    store.mark_queued("new", "o", store.create("new", "o", ["j2"], [1]))
    assert redis_client.zrange(keys.owner_batches("o"), 0, -1) == ["new"]
