"""Bearer keys: which headers pass, and what a caller's jobs are owned by."""

from __future__ import annotations

import pytest

from scheduler.api.auth import check_key, fingerprint
from shared.errors import Unauthorized

KEYS = ["key-one", "key-two"]


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", "Bearer wrong", "Basic key-one", "key-one", "Bearer key-one2"]
)
def test_missing_malformed_or_unknown_keys_are_refused(header: str | None) -> None:
    with pytest.raises(Unauthorized) as exc:
        check_key(header, KEYS)
    assert "Authorization: Bearer" in exc.value.message


def test_a_known_key_is_its_fingerprint_never_the_key() -> None:
    owner = check_key("Bearer key-two", KEYS)
    assert owner == fingerprint("key-two") and "key-two" not in owner
    assert check_key("bearer  key-two ", KEYS) == owner  # scheme in any case, spaces trimmed
    assert check_key("Bearer key-one", KEYS) != owner


def test_no_configured_keys_refuses_everyone() -> None:
    with pytest.raises(Unauthorized):
        check_key("Bearer anything", [])
