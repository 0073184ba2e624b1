"""The one backoff rule, alone: doubling from the base, capped, jitter between half and all of it."""

from __future__ import annotations

from shared.backoff import backoff_s


def test_doubles_from_the_base_and_is_capped() -> None:
    assert [backoff_s(n, 1.0, 30.0) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff_s(0, 1.0, 30.0) == 1.0  # no failure yet: the base


def test_jitter_scales_between_half_and_all() -> None:
    assert backoff_s(3, 0.5, 30.0, jitter=0.0) == 1.0
    assert backoff_s(3, 0.5, 30.0, jitter=1.0) == 2.0
    assert backoff_s(30, 0.5, 30.0, jitter=0.5) == 22.5
