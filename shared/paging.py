"""Pages of an owner's index: a Redis sorted set of ids scored by creation time, newest first, with
the creation time of a page's last item as the cursor of the next. Items whose record has expired are
left out of the page (their ids age out of the index separately)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Protocol, TypeVar

import redis

from shared.errors import InvalidInput

T = TypeVar("T")


class _Dated(Protocol):
    @property
    def created_at(self) -> datetime: ...


D = TypeVar("D", bound=_Dated)


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


def cut(found: list[D], limit: int) -> tuple[list[D], str | None]:
    """A page of `limit` from the `limit + 1` items read, and the next page's cursor (None: the last)."""
    page = found[:limit]
    return page, str(page[-1].created_at.timestamp()) if len(found) > limit and page else None


def parse_cursor(cursor: str | None) -> float | None:
    """The `before` of a `next_cursor` from `cut` (None: start at the newest); a 422 for anything else."""
    if cursor is None:
        return None
    try:
        before = float(cursor)
    except ValueError:
        before = math.nan
    if not math.isfinite(before):
        raise InvalidInput("cursor: must be the next_cursor of a previous page", field="cursor")
    return before
