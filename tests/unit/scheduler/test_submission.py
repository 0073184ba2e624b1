"""The request rules that depend on the deployment's settings."""

from __future__ import annotations

import ipaddress

import pytest

from scheduler.submission import check_request
from shared.errors import InvalidInput
from shared.schemas import InferenceRequest
from shared.settings import Settings

REQUEST = {
    "prompt": "a lighthouse",
    "model_version": "tiny-random",
    "width": 48,
    "height": 32,
    "num_frames": 17,
}


def test_timeout_must_stay_below_the_visibility_timeout() -> None:
    settings = Settings(visibility_timeout_s=4)
    check_request(InferenceRequest.model_validate(REQUEST | {"timeout_s": 3.5}), settings)
    with pytest.raises(InvalidInput) as exc:
        check_request(InferenceRequest.model_validate(REQUEST | {"timeout_s": 4}), settings)
    assert exc.value.field == "timeout_s" and "visibility timeout" in exc.value.message


def test_webhook_url_is_checked_against_the_allowed_networks() -> None:
    loopback = "http://127.0.0.1:9/hook"
    with pytest.raises(InvalidInput) as exc:
        check_request(InferenceRequest.model_validate(REQUEST | {"webhook_url": loopback}), Settings())
    assert exc.value.field == "webhook_url" and "loopback" in exc.value.message
    allowed = Settings(webhook_allowed_networks=[ipaddress.ip_network("127.0.0.0/8")])
    check_request(InferenceRequest.model_validate(REQUEST | {"webhook_url": loopback}), allowed)
