"""What crosses the HTTP boundary: the catalog's request payload and the job views.

Every rule is a 422 naming the field and the rule; nothing is silently corrected.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from shared.catalog import (
    CONTEXT_WINDOW_TOKENS,
    DEFAULT_MODEL_VERSION,
    GPU_TYPES,
    MODEL_SLUG,
    MODEL_VERSIONS,
    PROMPT_MAX_CHARS,
    ModelVersion,
)
from shared.errors import ErrorCode
from shared.frames import VAE_TEMPORAL, output_frames, plan_windows
from shared.states import DeliveryStatus, JobPhase, JobStatus
from shared.tokenizer import count_tokens


class WebhookEvent(StrEnum):
    """What a webhook can be sent for (`webhook_events_filter`)."""

    STARTED = "started"
    PROGRESS = "progress"
    COMPLETED = "completed"
    """The job ended: succeeded, failed, canceled or expired."""

    @property
    def type(self) -> str:
        """The `type` of the event's payload: `job.started`, `job.progress`, `job.completed`."""
        return f"job.{self.value}"


def _completed_only() -> list[WebhookEvent]:
    return [WebhookEvent.COMPLETED]


class InferenceRequest(BaseModel):
    """`POST /v1/inference/skywork-skyreels-v2`. Defaults are the catalog page's example values."""

    # Strict: "64", 64.0 and true are not silently turned into the integer a field needs.
    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(max_length=PROMPT_MAX_CHARS)
    negative_prompt: str = Field(
        "low quality, blurry, flicker, watermark, distorted anatomy", max_length=PROMPT_MAX_CHARS
    )
    width: int = 960
    height: int = 544
    num_frames: int = Field(97, ge=1)
    base_num_frames: int = Field(97, ge=1)
    fps: int = Field(24, ge=1, le=60)
    seed: int = Field(77, ge=0, le=2**63 - 1)
    guidance_scale: float = Field(6.0, ge=1.0, le=20.0)
    num_inference_steps: int = Field(20, ge=1, le=100)
    ar_step: int = Field(5, ge=0, le=100)
    causal_block_size: int = Field(5, ge=1)
    addnoise_condition: float = Field(20.0, ge=0.0, le=60.0)
    model: str = MODEL_SLUG
    model_version: str = DEFAULT_MODEL_VERSION
    gpu_type: str | None = None
    region: str | None = None
    overlap_history: int | None = Field(None, ge=1)
    start_deadline_s: float | None = Field(None, gt=0, le=7 * 24 * 3600)
    """Seconds the job may wait in the queue before it ends `expired` (default: settings)."""
    timeout_s: float | None = Field(None, gt=0, le=24 * 3600)
    """Execution deadline in seconds: past it the job ends `failed`, code `timeout` (default: settings)."""
    webhook_url: str | None = Field(None, max_length=2048)
    """Where signed job events are POSTed (Standard Webhooks)."""
    # Not strict: stored requests come back from JSON with the events as plain strings.
    webhook_events_filter: list[Annotated[WebhookEvent, Strict(False)]] = Field(
        default_factory=_completed_only, min_length=1, max_length=3
    )
    """Which events to send: `started`, `progress`, `completed` (succeeded, failed, canceled, expired)."""

    @field_validator("prompt", "negative_prompt", "webhook_url", "gpu_type", "region")
    @classmethod
    def _unicode_text(cls, v: str | None) -> str | None:
        if v is not None and not is_encodable(v):
            raise ValueError("must be valid Unicode text (it holds a lone surrogate)")
        return v

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, v: str) -> str:
        if not is_visible(v):
            raise ValueError("must not be empty (it holds only spaces or invisible characters)")
        return v

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.lower().startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return v

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        if v != MODEL_SLUG:
            raise ValueError(f"unknown model {v!r}; served: {MODEL_SLUG}")
        return v

    @field_validator("model_version")
    @classmethod
    def _known_version(cls, v: str) -> str:
        if v not in MODEL_VERSIONS:
            raise ValueError(f"unknown model_version {v!r}; served: {', '.join(MODEL_VERSIONS)}")
        return v

    @field_validator("gpu_type")
    @classmethod
    def _known_gpu(cls, v: str | None) -> str | None:
        if v is not None and v not in GPU_TYPES:
            raise ValueError(f"unknown gpu_type {v!r}; known: {', '.join(GPU_TYPES)}")
        return v

    @field_validator("num_frames", "base_num_frames", "overlap_history")
    @classmethod
    def _four_k_plus_one(cls, v: int | None) -> int | None:
        if v is not None and (v - 1) % VAE_TEMPORAL:
            raise ValueError(f"{v} - 1 must be divisible by {VAE_TEMPORAL} (e.g. 17, 33, 97)")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> InferenceRequest:
        spec = MODEL_VERSIONS[self.model_version]
        for name in ("width", "height"):
            value = getattr(self, name)
            if value % 16:
                raise FieldRuleError(name, f"must be a multiple of 16, got {value}")
            if not spec.min_side <= value <= spec.max_side:
                raise FieldRuleError(
                    name,
                    f"must be within {spec.min_side}..{spec.max_side} for {self.model_version}, got {value}",
                )
        self._within_budget(spec)
        if self.num_frames > spec.max_num_frames:
            raise FieldRuleError(
                "num_frames",
                f"must be at most {spec.max_num_frames} for {self.model_version}, got {self.num_frames}",
            )
        if self.num_frames > self.base_num_frames and self.overlap_history is None:
            raise FieldRuleError(
                "overlap_history",
                f"required when num_frames ({self.num_frames}) exceeds base_num_frames "
                f"({self.base_num_frames}): long videos are generated in overlapping windows "
                "(17 or 37 recommended)",
            )
        try:
            plan_windows(self.num_frames, self.base_num_frames, self.overlap_history, self.causal_block_size)
        except ValueError as exc:
            name, _, rule = str(exc).partition(": ")
            raise FieldRuleError(name, rule) from exc
        for name in ("prompt", "negative_prompt"):
            tokens = count_tokens(getattr(self, name), self.model_version)
            if tokens > CONTEXT_WINDOW_TOKENS:
                raise FieldRuleError(
                    name, f"is {tokens} tokens; the model's context window is {CONTEXT_WINDOW_TOKENS} tokens"
                )
        return self

    def _within_budget(self, spec: ModelVersion) -> None:
        """Nothing accepted may take hours per iteration or tens of GB to decode."""
        if self.base_num_frames > spec.max_base_num_frames:
            raise FieldRuleError(
                "base_num_frames",
                f"must be at most {spec.max_base_num_frames} for {self.model_version}, "
                f"got {self.base_num_frames}",
            )
        area = self.width * self.height
        window = area * min(self.num_frames, self.base_num_frames)
        if window > spec.max_window_pixel_frames:
            raise FieldRuleError(
                "base_num_frames",
                f"width x height x frames of one window is {window:,}; the limit for {self.model_version} "
                f"is {spec.max_window_pixel_frames:,}: lower the size or base_num_frames",
            )
        total = area * self.num_frames
        if total > spec.max_total_pixel_frames:
            raise FieldRuleError(
                "num_frames",
                f"width x height x num_frames is {total:,}; the limit for {self.model_version} is "
                f"{spec.max_total_pixel_frames:,}: lower the size or num_frames",
            )

    @property
    def output_num_frames(self) -> int:
        windows = plan_windows(
            self.num_frames, self.base_num_frames, self.overlap_history, self.causal_block_size
        )
        return output_frames(windows)


def is_encodable(text: str) -> bool:
    """Whether the text is valid Unicode (JSON's `\\ud800` escapes can carry lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_INVISIBLE = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp", "Zs"})


def is_visible(text: str) -> bool:
    """Whether the text has a character that shows: not only spaces, controls or zero-width marks."""
    return any(unicodedata.category(ch) not in _INVISIBLE for ch in text)


class FieldRuleError(ValueError):
    """A model-level rule attributed to one field, so the 422 names it."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


def describe_error(err: Any) -> tuple[str, str]:
    """One pydantic error as (field, rule), with model-level rules attributed to their field."""
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, FieldRuleError):
        return cause.field, cause.rule
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
    field = ".".join(loc) or "body"
    if err.get("type") == "extra_forbidden":
        return field, "unknown field; not part of the request schema"
    if err.get("type") == "missing":
        return field, "is required"
    return field, str(err.get("msg", "invalid")).removeprefix("Value error, ")


class ErrorDetail(BaseModel):
    """What went wrong: a code from `ErrorCode`, a message naming the field and the rule."""

    model_config = ConfigDict(extra="allow")

    code: ErrorCode
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """The body of every error response (4xx and 5xx)."""

    error: ErrorDetail


class Progress(BaseModel):
    """Where a running job is. `step` of `total` counts iterations of the diffusion-forcing schedule,
    which has more iterations than `num_inference_steps` when `ar_step > 0`."""

    phase: JobPhase | None = None
    step: int = 0
    total: int = 0
    fraction: float = 0.0
    """Of the denoising iterations."""


class Preview(BaseModel):
    """The growing preview of a running job: the frames decoded so far, as an MP4 next to the result."""

    storage_key: str
    frames: int
    updated_at: datetime


class Timings(BaseModel):
    queue_wait_s: float | None = None
    model_s: float | None = None
    """From the loaded model to the last frame decoded (the decode overlaps the denoising)."""
    encode_s: float | None = None
    upload_s: float | None = None
    first_frames_s: float | None = None
    """From the loaded model (where `model_s` starts) to the first decoded frames (the first causal
    block final)."""
    first_preview_s: float | None = None
    """From the loaded model to the first preview uploaded and on the job record."""
    video_s: float | None = None
    """From the loaded model to the final video uploaded: `video_s - first_preview_s` is how much
    earlier a preview was there to watch."""
    memory_plan: dict[str, Any] | None = None
    """The fast sampler's key/value cache decision for this job (`all`, `partial` or `recompute`: all
    exact) and the estimates it was made from."""


class VideoResult(BaseModel):
    storage_key: str
    bytes: int
    frames: int
    fps: int
    width: int
    height: int
    poster_key: str | None = None
    """First frame as JPEG, next to the MP4."""
    sidecar_key: str | None = None
    """JSON with everything needed to reproduce the video (parameters, seed, versions, timings)."""
    video_url: str | None = None
    video_url_expires_at: datetime | None = None
    poster_url: str | None = None
    sidecar_url: str | None = None
    retained_until: datetime | None = None
    """After this the files are deleted (retention) and no URL is handed out."""


class Attempt(BaseModel):
    """One run of a job on one worker."""

    number: int
    worker: str
    started_at: datetime
    ended_at: datetime | None = None
    outcome: str | None = None
    """How it ended: the job's final status, or `worker_lost` when its worker died mid-job (the job
    went back to the queue; after REELFORGE_MAX_ATTEMPTS such losses it ends failed/worker_lost)."""


class JobError(BaseModel):
    code: ErrorCode
    message: str


class WebhookAttempt(BaseModel):
    """One POST of a webhook delivery."""

    at: datetime
    status_code: int | None = None
    """The receiver's HTTP status; none when no response came (connection error, timeout, refused)."""
    latency_ms: float
    error: str | None = None


class WebhookDelivery(BaseModel):
    """One event sent to the job's `webhook_url`, with every attempt made."""

    id: str
    """The `webhook-id` header: the same on every attempt (receivers deduplicate on it)."""
    type: str
    url: str
    status: DeliveryStatus
    created_at: datetime
    next_attempt_at: datetime | None = None
    attempts: list[WebhookAttempt] = Field(default_factory=list)


class WebhookSecret(BaseModel):
    """`GET /v1/webhooks/secret`: the API key's signing secret (Standard Webhooks `whsec_...`)."""

    secret: str
    created_at: datetime | None = None
    previous_expires_at: datetime | None = None
    """After a rotation the previous secret keeps signing (a second signature) until then."""


class RotateSecretRequest(BaseModel):
    """`POST /v1/webhooks/secret/rotate` (optional body)."""

    model_config = ConfigDict(extra="forbid")

    overlap_s: float | None = Field(None, ge=0, le=7 * 24 * 3600)
    """How long the previous secret keeps signing (default: settings); 0 revokes it at once."""


class JobLinks(BaseModel):
    self: str
    video: str | None = None


class JobView(BaseModel):
    """`GET /v1/jobs/{id}` and the 202 answer to a submission."""

    id: str
    status: JobStatus
    model: str
    model_version: str
    queue_position: int | None = None
    gpu_type: str
    region: str
    worker: str | None = None
    attempts: int = 0
    attempt_history: list[Attempt] = Field(default_factory=list)
    """Each run: worker, start, end and how it ended (a lost worker shows as `worker_lost`)."""
    progress: Progress | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    start_deadline_at: datetime | None = None
    timeout_s: float | None = None
    timings: Timings = Field(default_factory=Timings)
    result: VideoResult | None = None
    error: JobError | None = None
    preview_url: str | None = None
    """While (and after) the job runs, a link to the MP4 of the frames decoded so far
    (`videos/<id>.preview.mp4`), updated every few seconds; the final video is `result.video_url`."""
    preview_frames: int = 0
    """Frames in that preview."""
    links: JobLinks
    request: dict[str, object]
    webhooks: list[WebhookDelivery] = Field(default_factory=list)
    """Deliveries to `webhook_url`, each with its attempts (time, status code, latency, error)."""
    batch_id: str | None = None
    """The batch it was submitted in (`GET /v1/batches/{id}`), if any."""


class JobPage(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None = None
