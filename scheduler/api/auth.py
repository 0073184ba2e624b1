"""Bearer-key authentication. Keys come from settings; jobs are owned by a key's fingerprint."""

from __future__ import annotations

import hashlib
import hmac

from shared.errors import Unauthorized

UNAUTHORIZED_MESSAGE = (
    "Set a real ReelForge API key before calling the API: send 'Authorization: Bearer <key>' "
    "with a key from REELFORGE_API_KEYS."
)


def fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def check_key(header: str | None, keys: list[str]) -> str:
    """The caller's owner fingerprint, or Unauthorized.

    Every configured key is compared, in constant time, so timing says nothing about which matched.
    """
    scheme, _, presented = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthorized(UNAUTHORIZED_MESSAGE)
    presented_b = presented.strip().encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented_b, key.encode())
    if not matched:
        raise Unauthorized(UNAUTHORIZED_MESSAGE)
    return fingerprint(presented.strip())
