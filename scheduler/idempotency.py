"""`Idempotency-Key`: the same key with the same body returns the same job (or batch); with another
body, a 422.

Keys are scoped per API key and per kind of resource, and kept `idempotency_ttl_s`. The reservation is
one `SET NX`, so of concurrent duplicates exactly one creates the resource and the others return it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from shared import keys
from shared.errors import InvalidInput, Unavailable

HEADER = "Idempotency-Key"


def body_hash(body: Any) -> str:
    """Of the validated request(s) (a model or plain data), so key order, spacing and spelled-out
    defaults do not matter."""
    data = body.model_dump(mode="json") if hasattr(body, "model_dump") else body
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Reservation:
    new: bool
    id: str
    """The job's (or batch's) id: the one just planned when `new`, else the one the key holds."""


class IdempotencyStore:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.r = client
        self.ttl_s = ttl_s

    def reserve(self, owner: str, key: str, body: Any, new_id: str, kind: str = "job") -> Reservation:
        """Hold `key` for `new_id` (a job, or a batch: `kind`), or find what it already holds."""
        if not 1 <= len(key) <= 255 or not key.isprintable():
            raise InvalidInput(f"{HEADER}: must be 1 to 255 printable characters", field=HEADER)
        digest = body_hash(body)
        value = json.dumps({"body": digest, "id": new_id})
        if self.r.set(keys.idempotency(owner, kind, key), value, nx=True, ex=self.ttl_s):
            return Reservation(True, new_id)
        raw = self.r.get(keys.idempotency(owner, kind, key))
        if raw is None:  # expired between the two calls: take it now
            return self.reserve(owner, key, body, new_id, kind)
        held = json.loads(str(raw))
        held_id = str(held.get("id") or held["job_id"])  # `job_id`: a job's, kept before batches had keys
        if held["body"] != digest:
            raise InvalidInput(
                f"{HEADER}: already used with a different request body ({kind} {held_id}); "
                "use a new key for a new request",
                field=HEADER,
            )
        return Reservation(False, held_id)

    def release(self, owner: str, key: str, kind: str = "job") -> None:
        """Forget a reservation whose job (or batch) could not be created, so a retry can create it."""
        self.r.delete(keys.idempotency(owner, kind, key))


def wait_for_created(exists: Callable[[str], bool], held_id: str, timeout_s: float = 10.0) -> None:
    """A concurrent duplicate may still be storing what the key holds: wait briefly for it."""
    deadline = time.monotonic() + timeout_s
    while not exists(held_id):
        if time.monotonic() > deadline:
            raise Unavailable(f"{held_id} for this {HEADER} is still being created; retry shortly")
        time.sleep(0.05)
