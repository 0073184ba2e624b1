"""`Idempotency-Key`: the same key with the same body returns the same job; with another body, a 422.

Keys are scoped per API key and kept `idempotency_ttl_s`. The reservation is one `SET NX`, so of
concurrent duplicates exactly one creates the job and the others return it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from shared import keys
from shared.errors import InvalidInput, Unavailable
from shared.schemas import InferenceRequest

HEADER = "Idempotency-Key"


def body_hash(body: InferenceRequest) -> str:
    """Of the validated request, so key order, spacing and spelled-out defaults do not matter."""
    return hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


@dataclass
class Reservation:
    new: bool
    job_id: str


class IdempotencyStore:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.r = client
        self.ttl_s = ttl_s

    def reserve(self, owner: str, key: str, body: InferenceRequest, job_id: str) -> Reservation:
        if not 1 <= len(key) <= 255 or not key.isprintable():
            raise InvalidInput(f"{HEADER}: must be 1 to 255 printable characters", field=HEADER)
        digest = body_hash(body)
        value = json.dumps({"body": digest, "job_id": job_id})
        if self.r.set(keys.idempotency(owner, key), value, nx=True, ex=self.ttl_s):
            return Reservation(True, job_id)
        raw = self.r.get(keys.idempotency(owner, key))
        if raw is None:  # expired between the two calls: take it now
            return self.reserve(owner, key, body, job_id)
        held = json.loads(str(raw))
        if held["body"] != digest:
            raise InvalidInput(
                f"{HEADER}: already used with a different request body (job {held['job_id']}); "
                "use a new key for a new request",
                field=HEADER,
            )
        return Reservation(False, str(held["job_id"]))

    def release(self, owner: str, key: str) -> None:
        """Forget a reservation whose job could not be created, so a retry can create it."""
        self.r.delete(keys.idempotency(owner, key))


def wait_for_job(exists: Callable[[str], bool], job_id: str, timeout_s: float = 10.0) -> None:
    """A concurrent duplicate may still be storing the job: wait briefly for it."""
    deadline = time.monotonic() + timeout_s
    while not exists(job_id):
        if time.monotonic() > deadline:
            raise Unavailable(f"job {job_id} for this {HEADER} is still being created; retry shortly")
        time.sleep(0.05)
