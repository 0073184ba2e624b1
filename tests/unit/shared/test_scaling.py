"""The one rule that brings a worker back to a pool."""

from __future__ import annotations

import pytest

from shared.scaling import needs_worker


@pytest.mark.parametrize(
    ("queued", "prewarm", "live", "starting", "start"),
    [
        (1, False, 0, 0, True),  # work and nobody to do it
        (0, True, 0, 0, True),  # a prewarm asks for one
        (0, False, 0, 0, False),  # nothing to do: scaled to zero
        (5, False, 1, 0, False),  # a live worker takes it
        (5, True, 0, 1, False),  # one is already booting
    ],
)
def test_a_worker_is_started_only_for_work_with_no_worker(
    queued: int, prewarm: bool, live: int, starting: int, start: bool
) -> None:
    assert needs_worker(queued, prewarm, live, starting) is start
