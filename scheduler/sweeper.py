"""The sweeper: a thread in the API process that ends what no worker will end.

Every `sweep_interval_s` it expires queued jobs past their start deadline, ends running jobs long
past their execution deadline whose live worker is not finishing them, sends the queue message of jobs
whose submission failed between record and send, puts dead workers' tasks back
on their queues (so a pool with no worker left still gets them back), and applies the local store's
retention.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from scheduler.services import Services
from scheduler.submission import resend_unconfirmed
from shared.broker import restore_unacked
from shared.storage import LocalStorage

log = logging.getLogger(__name__)
UNCONFIRMED_AFTER_S = 5.0
"""A queued job whose message was not confirmed sent this long after creation had its API fail
between the record and the send."""


def sweep(services: Services) -> None:
    settings, store = services.settings, services.store
    for job_id in store.expire_overdue():
        log.info("job %s expired before it started", job_id)
    for job_id in resend_unconfirmed(store, services.celery, UNCONFIRMED_AFTER_S):
        log.warning("job %s: its queue message was never confirmed sent; sent again", job_id)
    for job_id, code in store.reap_overdue(settings.reap_grace_s):
        log.warning("job %s ended %s by the sweeper", job_id, code)
    restore_unacked(services.celery)
    if isinstance(services.storage, LocalStorage):
        services.storage.delete_older_than(settings.retention_days)


def _sweep_forever(services: Services, stop: threading.Event) -> None:
    while not stop.wait(services.settings.sweep_interval_s):
        try:
            sweep(services)
        except Exception:
            log.exception("sweep failed")


@contextmanager
def running_sweeper(services: Services) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=_sweep_forever, args=(services, stop), name="sweeper", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
