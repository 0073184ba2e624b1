"""Standard Webhooks signing (https://www.standardwebhooks.com) and each API key's signing secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import redis

from shared import keys
from shared.jobs import now
from shared.schemas import WebhookSecret

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed by the base64 part after `whsec_`."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(secrets_: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers; one space-separated signature per active secret."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets_),
    }


class SecretStore:
    """One signing secret per API key (its owner fingerprint); a rotation keeps the previous one
    signing too until its overlap ends, so receivers can switch without dropping events."""

    def __init__(self, client: redis.Redis, overlap_s: float) -> None:
        self.r = client
        self.overlap_s = overlap_s

    def current(self, owner: str) -> WebhookSecret:
        key = keys.webhook_secret(owner)
        if self.r.hsetnx(key, "current", new_secret()):
            self.r.hset(key, "created_at", now().isoformat())
        return self._view(self.r.hgetall(key))  # type: ignore[arg-type]

    def rotate(self, owner: str, overlap_s: float | None = None) -> WebhookSecret:
        self.current(owner)
        key = keys.webhook_secret(owner)
        overlap = self.overlap_s if overlap_s is None else overlap_s
        fresh = new_secret()

        def txn(p: Any) -> None:
            old = p.hget(key, "current")
            p.multi()
            p.hset(key, mapping={"current": fresh, "created_at": now().isoformat()})
            if overlap > 0 and old:
                until = now() + timedelta(seconds=overlap)
                p.hset(key, mapping={"previous": old, "previous_expires_at": until.isoformat()})
            else:
                p.hdel(key, "previous", "previous_expires_at")

        self.r.transaction(txn, key)
        return self._view(self.r.hgetall(key))  # type: ignore[arg-type]

    def signing_secrets(self, owner: str) -> list[str]:
        """The secrets that sign now: the current one, then the previous one during its overlap."""
        self.current(owner)
        data: dict[str, str] = self.r.hgetall(keys.webhook_secret(owner))  # type: ignore[assignment]
        active = [data["current"]]
        if data.get("previous") and _previous_active(data):
            active.append(data["previous"])
        return active

    @staticmethod
    def _view(data: dict[str, str]) -> WebhookSecret:
        return WebhookSecret(
            secret=data["current"],
            created_at=datetime.fromisoformat(data["created_at"]) if data.get("created_at") else None,
            previous_expires_at=(
                datetime.fromisoformat(data["previous_expires_at"]) if _previous_active(data) else None
            ),
        )


def _previous_active(data: dict[str, str]) -> bool:
    until = data.get("previous_expires_at")
    return bool(until) and now() < datetime.fromisoformat(str(until))
