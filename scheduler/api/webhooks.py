"""Webhook routes: the API key's signing secret and its rotation."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI

from scheduler.api.auth import owner_of
from shared.schemas import RotateSecretRequest, WebhookSecret
from shared.webhooks.signing import SecretStore

Owner = Annotated[str, Depends(owner_of)]


def install_webhook_routes(app: FastAPI) -> None:
    secrets = SecretStore(app.state.store.r, app.state.settings.webhook_secret_overlap_s)
    app.state.webhook_secrets = secrets

    @app.get("/v1/webhooks/secret")
    def webhook_secret(owner: Owner) -> WebhookSecret:
        """The `whsec_...` secret that signs this API key's webhooks (created on first use)."""
        return secrets.current(owner)

    @app.post("/v1/webhooks/secret/rotate")
    def rotate_webhook_secret(owner: Owner, body: RotateSecretRequest | None = None) -> WebhookSecret:
        """A new secret; the previous one keeps signing too until `previous_expires_at`."""
        return secrets.rotate(owner, body.overlap_s if body else None)
