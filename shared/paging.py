"""Pages of an owner's index: a Redis sorted set of ids scored by creation time, newest first, with
the creation time of a page's last item as the cursor of the next. Items whose record has expired are
left out of the page (their ids age out of the index separately)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import redis

T = TypeVar("T")


def newest_first(
    r: redis.Redis,
    index: str,
    load: Callable[[list[str]], list[T | None]],
    limit: int,
    before: float | None,
) -> list[T]:
    """Up to `limit` items created strictly before `before`; `load` reads the records of some ids
    (None for one that expired), and is called again while expired ones leave the page short."""
    top: float | str = f"({before}" if before is not None else "+inf"
    found: list[T] = []
    offset = 0
    while len(found) < limit:
        ids = r.zrevrangebyscore(index, top, "-inf", start=offset, num=limit - len(found))
        if not ids:
            break
        offset += len(ids)
        found += [item for item in load([str(i) for i in ids]) if item is not None]
    return found
