"""Webhook routes: the API key's signing secret and its rotation."""

from __future__ import annotations

from fastapi import APIRouter

from scheduler.api.deps import COMMON_ERRORS, Owner, ServicesDep
from shared.schemas import RotateSecretRequest, WebhookSecret

router = APIRouter(tags=["webhooks"], responses=COMMON_ERRORS)


@router.get("/v1/webhooks/secret")
def webhook_secret(owner: Owner, services: ServicesDep) -> WebhookSecret:
    """The `whsec_...` secret that signs this API key's webhooks (created on first use)."""
    return services.secrets.current(owner)


@router.post("/v1/webhooks/secret/rotate")
def rotate_webhook_secret(
    owner: Owner, services: ServicesDep, body: RotateSecretRequest | None = None
) -> WebhookSecret:
    """A new secret; the previous one keeps signing too until `previous_expires_at`."""
    return services.secrets.rotate(owner, body.overlap_s if body else None)
