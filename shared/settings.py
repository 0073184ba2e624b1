"""The one settings object. Every knob is read from `REELFORGE_*` environment variables (or `.env`)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, IPvAnyNetwork, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.keys import pool_queue

PLACEHOLDER_SECRETS = {"", "changeme", "dev-signing-secret", "rf-dev-key", "reelforge:dev-flower-password"}
MIN_SECRET_CHARS = 32
"""Production refuses shorter API keys, signing secrets and Flower passwords."""


class PoolConfig(BaseModel):
    """A GPU pool: one GPU type in one region, consumed from one Celery queue."""

    gpu_type: str
    region: str
    model_versions: list[str]

    @property
    def queue(self) -> str:
        return pool_queue(self.gpu_type, self.region)


DEFAULT_POOLS = [PoolConfig(gpu_type="CPU", region="local", model_versions=["tiny-random"])]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REELFORGE_", env_file=".env", extra="ignore", use_attribute_docstrings=True
    )

    env: Literal["development", "production"] = "development"
    """`production` refuses placeholder secrets and the dev API key."""

    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["rf-dev-key"])
    """Bearer keys accepted by the API, comma-separated. Each key sees only its own jobs."""

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_base_url: str = "http://127.0.0.1:8000"
    """Base URL the API is reached at; signed local-storage links are built on it."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Job records and the Celery broker both live here."""

    visibility_timeout_s: int = 3600
    """Seconds before an unacknowledged task is redelivered (Redis transport). Must exceed the longest
    job: a worker killed mid-job gets its task redelivered after this long."""

    restore_interval_s: int = 10
    """How often workers sweep for unacknowledged tasks older than the visibility timeout."""

    start_deadline_s: float = 3600.0
    """Default start deadline: a job still queued this long after submission ends `expired`."""
    execution_timeout_s: float = 600.0
    """Default execution deadline (the catalog's 600 s): past it a job ends `failed`/`timeout`."""
    max_attempts: int = 3
    """A job whose worker dies this many times ends `failed` with `worker_lost` instead of looping."""
    prewarm_timeout_s: float = 600.0
    """How long `POST .../start` waits for a worker to become warm (the catalog's request timeout)."""
    reap_grace_s: float = 600.0
    """The sweeper ends a running job this long past its execution deadline when its live worker is
    not finishing it (hung, or it lost the job store mid-job); dead workers' jobs are redelivered."""
    sweep_interval_s: float = 5.0
    """How often the API expires queued jobs past their start deadline."""

    max_wait_s: float = Field(60.0, ge=0)
    """Longest a submission with `Prefer: wait` (or `wait=N`) is held before it answers 202 with the job
    still queued or running; the wait holds no server thread (it blocks on the job's event stream)."""
    events_heartbeat_s: float = Field(15.0, gt=0)
    """`GET /v1/jobs/{id}/events` sends an SSE comment after this long without an event, so proxies
    and load balancers do not close an idle stream."""
    metrics_auth: Literal["api_key", "none"] = "api_key"
    """`GET /metrics`: `api_key` asks for a bearer API key like every route; `none` leaves it open for a
    scraper inside the cluster (keep it off the public ingress then)."""

    idempotency_ttl_s: int = 24 * 3600
    """How long an `Idempotency-Key` is remembered (per API key)."""

    job_ttl_s: int = 30 * 24 * 3600
    """How long job records are kept in Redis after they are created."""
    batch_max_requests: int = Field(1000, ge=1)
    """Most requests one `POST /v1/batches` may carry; a larger batch is refused whole (422)."""
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    """Largest request body on every route but batches, and largest JSONL batch line; counted while the
    body is read, before it is parsed: past it, 413."""
    batch_max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    """Largest `POST /v1/batches` body (1,000 requests of about 30 KB each); past it, 413."""
    rate_limit_per_s: float = Field(20.0, ge=0)
    """Submissions (jobs and batches) each API key may make per second, sustained; 0 turns limits off."""
    rate_limit_burst: int = Field(100, ge=1)
    """Submissions an API key may make at once before the sustained rate applies (token bucket)."""
    prewarm_rate_limit_per_s: float = Field(0.2, ge=0)
    """Prewarm/stop calls each API key may make per second, sustained (burst: 5); 0 turns it off."""

    pools: list[PoolConfig] = Field(default_factory=lambda: list(DEFAULT_POOLS))
    """GPU pools as JSON: `[{"gpu_type": "H200", "region": "eu-north2", "model_versions": [...]}]`."""

    storage_backend: Literal["local", "s3"] = "local"
    storage_dir: Path = Path("data/storage")
    """Local-directory store (embedded stack): files served by the API through signed links."""
    signing_secret: str = "dev-signing-secret"
    """HMAC key for local-storage links."""
    retention_days: int = 30
    """Videos, posters, sidecars and manifests are kept this long after the job ends (S3: apply the
    bucket lifecycle rule with `reelforge storage-lifecycle`; local: the API's sweeper deletes them)."""
    presign_expiry_s: int = 3600
    """Lifetime of every video URL handed out (S3 presigned or local signed)."""

    webhook_allowed_networks: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)
    """CIDRs webhooks may reach although not public (comma-separated, e.g. `10.1.0.0/16`); loopback,
    private, link-local and other non-public addresses are refused otherwise. Cloud metadata
    addresses (169.254.169.254, fd00:ec2::254, ...) are refused always."""
    webhook_timeout_s: float = 10.0
    """Whole-attempt limit for one webhook POST (connect, send, response); past it: a retryable error."""
    webhook_max_response_bytes: int = 64 * 1024
    """At most this much of a receiver's response body is read; the connection is closed after it."""
    webhook_retry_base_s: float = 5.0
    """First retry delay; doubled per attempt, capped, with jitter (x0.5 to x1)."""
    webhook_retry_max_delay_s: float = 3600.0
    """Cap on one retry delay."""
    webhook_retry_window_s: float = 8 * 3600.0
    """Retries (connection errors, timeouts, 429, 5xx) stop once the next one would fall this long after
    the event; the delivery then shows `failed`. Other 4xx and refused addresses are not retried."""
    webhook_progress_interval_s: float = 1.0
    """At most one `progress` webhook per job per this many seconds."""
    webhook_secret_overlap_s: float = 24 * 3600.0
    """After `POST /v1/webhooks/secret/rotate` the previous secret keeps signing this long."""
    webhook_poll_interval_s: float = 1.0
    """How often the delivery worker looks for retries that came due."""

    flower_basic_auth: str = "reelforge:dev-flower-password"
    """`user:password` Flower asks for (its UI and `/metrics`); every place that starts Flower passes it,
    so Flower is never open. Production refuses the default and passwords under 32 characters."""

    storage_retry_s: float = Field(300.0, ge=0)
    """How long a worker keeps retrying an upload that storage refuses or does not answer (with
    backoff, the encoded files kept on local disk) before the job fails `storage_unavailable`."""

    s3_endpoint_url: str | None = None
    s3_public_endpoint_url: str | None = None
    """Endpoint that presigned links are built on, when clients reach S3 at another address than the
    services do (compose: services use `http://minio:9000`, the laptop `http://localhost:9000`)."""
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_bucket: str = "reelforge"
    s3_multipart_threshold_bytes: int = 8 * 1024 * 1024
    s3_timeout_s: float = Field(30.0, gt=0)
    """Socket timeout of one S3 request (connecting: at most 5 s): a black-holed endpoint fails the
    attempt this fast, and REELFORGE_STORAGE_RETRY_S decides how long to keep trying."""

    worker_gpu_type: str = "CPU"
    """The pool a worker serves: its GPU type and region select its queue."""
    worker_region: str = "local"
    worker_heartbeat_s: float = 10.0
    """A dead worker stops counting within this long: its liveness key lives this long and is
    refreshed twice per period."""
    worker_idle_timeout_s: float = 900.0
    """A worker with no task for this long shuts down warmly and frees its GPU (unless kept warm).
    On Kubernetes keep terminationGracePeriodSeconds above the longest job, so a warm shutdown
    never cuts one short."""
    worker_device: str | None = None
    """`cuda` or `cpu`; default: CUDA when available."""
    hf_home: Path | None = None
    """Hugging Face cache holding the real checkpoints (downloaded ahead of time; never at run time)."""
    sampler: Literal["fast", "pipeline"] = "fast"
    """`fast`: workers.sampler (exact, faster); `pipeline`: diffusers' own __call__."""
    compile_blocks: bool = False
    """With the fast sampler on CUDA, `torch.compile` the per-layer code (regional compilation).
    Off by default: its gain has not been measured on a GPU yet (docs/perf.md)."""
    preview_interval_s: float | None = Field(5.0, ge=0)
    """With the fast sampler, the running job's frames decoded so far are re-encoded and uploaded as
    `videos/<id>.preview.mp4` at most this often (the first as soon as the first block is final), in a
    background thread; unset (empty) turns the preview off. Each upload re-encodes the whole preview, so
    a short interval costs CPU time on long videos."""

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [n.strip() for n in value.split(",") if n.strip()]
        return value

    @field_validator("pools", mode="before")
    @classmethod
    def _parse_pools(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        if not self.api_keys:
            raise ValueError("REELFORGE_API_KEYS: at least one API key is required")
        if self.env == "production":
            self._refuse_weak_secrets()
            if not self.within_visibility_timeout(self.execution_timeout_s):
                raise ValueError("REELFORGE_EXECUTION_TIMEOUT_S must be below REELFORGE_VISIBILITY_TIMEOUT_S")
        return self

    def _refuse_weak_secrets(self) -> None:
        flower_password = self.flower_basic_auth.partition(":")[2]
        if self.signing_secret in PLACEHOLDER_SECRETS or len(self.signing_secret) < MIN_SECRET_CHARS:
            raise ValueError(f"REELFORGE_SIGNING_SECRET: set a real secret of {MIN_SECRET_CHARS}+ characters")
        if any(k in PLACEHOLDER_SECRETS or len(k) < MIN_SECRET_CHARS for k in self.api_keys):
            raise ValueError(
                f"REELFORGE_API_KEYS: every key needs {MIN_SECRET_CHARS}+ characters; no dev key"
            )
        if self.flower_basic_auth in PLACEHOLDER_SECRETS or len(flower_password) < MIN_SECRET_CHARS:
            raise ValueError(
                "REELFORGE_FLOWER_BASIC_AUTH: set user:password, "
                f"with a password of {MIN_SECRET_CHARS}+ characters"
            )

    def within_visibility_timeout(self, timeout_s: float) -> bool:
        """Whether a job with this execution timeout finishes before its task is handed out again: the
        broker redelivers a task still unacknowledged after the visibility timeout."""
        return timeout_s < self.visibility_timeout_s

    @property
    def worker_queue(self) -> str:
        return PoolConfig(gpu_type=self.worker_gpu_type, region=self.worker_region, model_versions=[]).queue


@lru_cache
def get_settings() -> Settings:
    return Settings()
