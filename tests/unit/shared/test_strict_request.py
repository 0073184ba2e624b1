"""Strict request types: no silent coercion at the API, and a stored request still validates where the
worker reads it back (from JSON, with enums as plain strings)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shared.schemas import InferenceRequest, WebhookEvent, is_encodable, is_visible

TINY = {"prompt": "a cat", "width": 48, "height": 32, "num_frames": 17, "model_version": "tiny-random"}


def test_a_stored_request_validates_again_from_json() -> None:
    request = InferenceRequest.model_validate(TINY | {"webhook_events_filter": ["started", "completed"]})
    stored = json.loads(json.dumps(request.model_dump(mode="json")))
    again = InferenceRequest.model_validate(stored)
    assert again == request
    assert again.webhook_events_filter == [WebhookEvent.STARTED, WebhookEvent.COMPLETED]


@pytest.mark.parametrize(("field", "value"), [("width", "64"), ("width", 64.0), ("fps", True), ("seed", "1")])
def test_no_coercion_in_python_or_json_input(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        InferenceRequest.model_validate(TINY | {field: value})
    with pytest.raises(ValidationError, match=field):
        InferenceRequest.model_validate_json(json.dumps(TINY | {field: value}))


def test_text_checks() -> None:
    assert not is_encodable("a\ud800b") and is_encodable("café ✓")
    assert not is_visible("\u200b \ufeff\t") and is_visible("\u200bx")
