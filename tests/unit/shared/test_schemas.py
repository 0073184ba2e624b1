"""The request's own rules, without the API: each refusal names the field and the rule, and nothing
is silently corrected. (Rules that depend on the deployment, such as which pools exist, are routing's.)"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shared.schemas import InferenceRequest, describe_error
from tests.request_rules import RULES, VALID

CASES = RULES


@pytest.mark.parametrize(("name", "change", "field", "rule"), CASES, ids=[c[0] for c in CASES])
def test_rule_names_field_and_rule(name: str, change: dict[str, Any], field: str, rule: str) -> None:
    body = {k: v for k, v in (VALID | change).items() if v is not None}
    with pytest.raises(ValidationError) as exc:
        InferenceRequest.model_validate(body)
    found_field, found_rule = describe_error(exc.value.errors()[0])
    assert found_field == field
    assert rule in found_rule


def test_valid_requests_are_kept_as_sent() -> None:
    req = InferenceRequest.model_validate(VALID)
    assert (req.width, req.height, req.num_frames, req.seed) == (48, 32, 17, 77)
    assert req.output_num_frames == 17
    long = InferenceRequest.model_validate(
        VALID | {"num_frames": 57, "base_num_frames": 37, "overlap_history": 17, "causal_block_size": 5}
    )
    assert long.output_num_frames == 57


def test_defaults_are_the_catalog_example() -> None:
    req = InferenceRequest.model_validate({"prompt": "a lighthouse"})
    assert (req.model_version, req.width, req.height, req.num_frames) == (
        "df-1-3b-540p-diffusers",
        960,
        544,
        97,
    )
    assert (req.num_inference_steps, req.ar_step, req.causal_block_size) == (20, 5, 5)
    assert req.webhook_events_filter == ["completed"]
