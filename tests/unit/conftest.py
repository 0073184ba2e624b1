"""Unit tests run without the stack. The few that need Redis share one redis-server and start each
test on an empty database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from scheduler.dev.stack import Stack, free_port


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    stack = Stack(tmp_path_factory.mktemp("redis"))
    try:
        yield stack.start_redis(free_port(), persist=False)
    finally:
        stack.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()
