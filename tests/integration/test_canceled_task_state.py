"""A canceled job's Celery task does not show as succeeded in Flower: read through Celery's own event
stream and state machine (what Flower runs on), it ends REVOKED."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from celery import Celery
from celery.events.state import State

from tests.integration.support import ROUTE, SLOW_REQUEST, SMALL_REQUEST, Live, wait_for, wait_job

pytestmark = pytest.mark.integration


@pytest.fixture
def task_events(live: Live) -> Iterator[State]:
    """Celery's event state, fed by a receiver on the test stack's broker while the test runs."""
    app = Celery(broker=live.stack.env["REELFORGE_REDIS_URL"])
    state, stop, ready = State(), threading.Event(), threading.Event()

    def consume() -> None:
        with app.connection_for_read() as conn:
            receiver = app.events.Receiver(conn, handlers={"*": state.event})
            for _ in receiver.consume(limit=None, timeout=0.5, wakeup=False, safety_interval=0.2):
                ready.set()
                if stop.is_set():
                    return

    def run() -> None:
        while not stop.is_set():
            try:
                consume()
            except TimeoutError:
                ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    yield state
    stop.set()
    thread.join(5)


def task_state(state: State, task_id: str) -> str | None:
    task = state.tasks.get(task_id)
    return task.state if task is not None else None


def test_canceled_running_task_ends_revoked(api: httpx.Client, task_events: State) -> None:
    done = wait_job(api, api.post(ROUTE, json=SMALL_REQUEST).json()["id"])
    job = api.post(ROUTE, json=SLOW_REQUEST).json()
    wait_for(lambda: api.get(f"/v1/jobs/{job['id']}").json()["status"] == "running", 60, "the job to start")
    assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    wait_for(lambda: task_state(task_events, job["id"]) == "REVOKED", 60, "the task to be revoked")
    assert task_state(task_events, done["id"]) in (None, "SUCCESS")
    # The worker goes on serving: the next job succeeds.
    assert wait_job(api, api.post(ROUTE, json=SMALL_REQUEST).json()["id"])["status"] == "succeeded"
    assert task_state(task_events, job["id"]) == "REVOKED"
