"""Webhook signatures, checked with the `standardwebhooks` reference package, not with our own code."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from shared.webhooks.signing import SECRET_PREFIX, new_secret, sign, signed_headers


def test_secret_is_whsec_with_32_random_bytes() -> None:
    a, b = new_secret(), new_secret()
    assert a.startswith(SECRET_PREFIX) and a != b
    assert len(base64.b64decode(a.removeprefix(SECRET_PREFIX))) == 32


def test_signature_verifies_with_the_reference_implementation() -> None:
    secret = new_secret()
    body = b'{"type":"job.completed","data":{"id":"j1"}}'
    ts = int(time.time())
    headers = signed_headers([secret], "msg_1", ts, body)
    assert headers["webhook-id"] == "msg_1" and headers["webhook-timestamp"] == str(ts)
    assert Webhook(secret).verify(body, headers) == {"type": "job.completed", "data": {"id": "j1"}}
    # Any change to the body, id or timestamp breaks it; so does another secret.
    for bad_body, bad_headers in [
        (body + b" ", headers),
        (body, {**headers, "webhook-id": "msg_2"}),
        (body, {**headers, "webhook-timestamp": str(ts - 1)}),
    ]:
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(bad_body, bad_headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_signature_is_hmac_sha256_over_id_timestamp_body() -> None:
    # The README's recipe, written out: what a receiver without the package does.
    import hashlib
    import hmac

    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    expected = base64.b64encode(hmac.new(b"k" * 32, b"msg_x.1700000000.{}", hashlib.sha256).digest())
    assert sign(secret, "msg_x", 1700000000, b"{}") == "v1," + expected.decode()


def test_two_secrets_sign_with_two_signatures_each_verifying() -> None:
    old, new = new_secret(), new_secret()
    body = b'{"a":1}'
    headers = signed_headers([new, old], "msg_r", int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)
