"""One attempt of a delivery against a real Redis and a local receiver: the per-delivery lock keeps
two workers from making the same attempt, and only its holder releases it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
import redis

from shared import keys
from shared.jobs import now
from shared.settings import Settings
from shared.states import DeliveryStatus
from shared.webhooks.deliveries import DeliverMessage, StoredDelivery
from shared.webhooks.delivery import Deliverer
from tests.loopback import LoopbackServer


class Receiver:
    """Counts POSTs; each waits for `release` before it is answered 200."""

    def __init__(self) -> None:
        self.posts = 0
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.server = LoopbackServer(self._answer)
        self.url = self.server.url("/hook")

    def _answer(self, _request: BaseHTTPRequestHandler, _body: bytes) -> int:
        self.posts += 1
        self.arrived.set()
        self.release.wait(10)
        return 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.release.set()
    r.server.stop()


@pytest.fixture
def deliverer(redis_url: str, redis_client: redis.Redis) -> Deliverer:
    settings = Settings(redis_url=redis_url, webhook_allowed_networks=["127.0.0.0/8"])
    return Deliverer(settings, client=redis_client)


def _pending(d: Deliverer, url: str) -> DeliverMessage:
    delivery = StoredDelivery(
        id="msg_t", type="job.completed", url=url, status=DeliveryStatus.PENDING, created_at=now(),
        job_id="job_t", owner="owner_t", body='{"type":"job.completed","data":{}}',
    )  # fmt: skip
    d.deliveries.add_once(delivery, due_at=0)
    return DeliverMessage(job_id="job_t", delivery_id="msg_t", attempt=1)


def test_an_attempt_in_progress_is_not_made_again(deliverer: Deliverer, receiver: Receiver) -> None:
    message = _pending(deliverer, receiver.url)
    first = threading.Thread(target=deliverer.attempt, args=(message,))
    first.start()
    assert receiver.arrived.wait(10)
    deliverer.attempt(message)  # the same task delivered twice, while the first is at the receiver
    receiver.release.set()
    first.join(10)
    made = deliverer.deliveries.get("job_t", "msg_t")
    assert receiver.posts == 1
    assert made is not None and made.status == DeliveryStatus.SUCCEEDED and len(made.attempts) == 1
    assert not deliverer.r.exists(keys.webhook_attempt_lock("msg_t"))


def test_a_lapsed_lock_taken_by_another_attempt_stays_theirs(
    deliverer: Deliverer, receiver: Receiver
) -> None:
    message = _pending(deliverer, receiver.url)
    lock = keys.webhook_attempt_lock("msg_t")
    first = threading.Thread(target=deliverer.attempt, args=(message,))
    first.start()
    assert receiver.arrived.wait(10)
    deliverer.r.set(lock, "another-worker")  # the first attempt's lease lapsed; another took it
    receiver.release.set()
    first.join(10)
    assert deliverer.r.get(lock) == "another-worker"
