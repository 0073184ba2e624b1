"""When a failed delivery is tried again: backoff with jitter, `Retry-After`, the retry window."""

from __future__ import annotations

from datetime import timedelta

from shared.jobs import now
from shared.settings import Settings
from shared.webhooks.deliveries import next_attempt_at, retry_delay


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    s = Settings(webhook_retry_base_s=5, webhook_retry_max_delay_s=60)
    assert [retry_delay(s, n, lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 60]
    assert retry_delay(s, 3, lambda: 0.0) == 10  # jitter: half to all of the step
    assert retry_delay(s, 30, lambda: 1.0) == 60


def test_retries_stop_at_the_window() -> None:
    s = Settings(webhook_retry_base_s=10, webhook_retry_window_s=3600)
    assert next_attempt_at(s, now(), 1, lambda: 1.0) is not None
    assert next_attempt_at(s, now() - timedelta(seconds=3595), 1, lambda: 1.0) is None


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    s = Settings(webhook_retry_base_s=1, webhook_retry_max_delay_s=60, webhook_retry_window_s=3600)
    t0 = now()
    waited = (next_attempt_at(s, t0, 1, lambda: 1.0, retry_after_s=30) - t0).total_seconds()  # type: ignore[operator]
    assert 30 <= waited < 31
    capped = (next_attempt_at(s, t0, 1, lambda: 1.0, retry_after_s=9999) - t0).total_seconds()  # type: ignore[operator]
    assert 60 <= capped < 61
