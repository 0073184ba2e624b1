"""How long to wait before trying again: exponential backoff, capped, optionally with jitter. One rule
for everything here that retries (webhook deliveries, the Python clients, result uploads, the embedded
supervisor's restarts)."""

from __future__ import annotations


def backoff_s(failures: int, base_s: float, max_s: float, jitter: float | None = None) -> float:
    """The wait after `failures` failed tries (1 or more): `base_s` doubling with each, at most `max_s`.
    With `jitter` (a draw from 0..1), scaled to 0.5..1 of that, so many retrying clients spread out."""
    step = min(base_s * 2 ** max(failures - 1, 0), max_s)
    return step if jitter is None else step * (0.5 + jitter / 2)
