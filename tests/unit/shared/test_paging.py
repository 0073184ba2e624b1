"""A listing's page and cursor, alone: the cursor is the last item's creation time, and reads back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from shared.errors import InvalidInput
from shared.paging import cut, parse_cursor


@dataclass
class Item:
    created_at: datetime


def test_a_page_has_a_cursor_only_when_more_were_read() -> None:
    items = [Item(datetime(2026, 11, 27, 0, 0, s, 250, tzinfo=UTC)) for s in (3, 2, 1)]
    page, cursor = cut(items, 2)
    assert page == items[:2] and cursor is not None
    assert parse_cursor(cursor) == items[1].created_at.timestamp()
    assert cut(items, 3) == (items, None) and cut([], 2) == ([], None)


@pytest.mark.parametrize("bad", ["soon", "nan", "inf", ""])
def test_anything_but_a_cursor_is_a_422_naming_it(bad: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_cursor(bad)
    assert refused.value.field == "cursor"
    assert parse_cursor(None) is None
