"""Every Redis key, Celery queue and task name ReelForge uses, built in this one module.

A reader who wants to know what lives in Redis reads this page; the rest of the code imports these
functions and never spells a key out.
"""

from __future__ import annotations

import hashlib

PREFIX = "rf"

# Celery queues and task names.

QUEUE_PREFIX = "reelforge"
WEBHOOK_QUEUE = f"{QUEUE_PREFIX}.webhooks"
"""The webhook delivery worker's queue (no GPU, no torch)."""
GENERATE_TASK = f"{QUEUE_PREFIX}.generate"
WARMUP_TASK = f"{QUEUE_PREFIX}.warmup"
DELIVER_TASK = f"{QUEUE_PREFIX}.webhook.deliver"


def pool_queue(gpu_type: str, region: str) -> str:
    """A GPU pool's Celery queue (a Redis list of the same name): `reelforge.<gpu>.<region>`."""
    return f"{QUEUE_PREFIX}.{gpu_type.lower()}.{region.lower()}"


# Jobs (shared.jobstore).


def job(job_id: str) -> str:
    """The job record (JSON), the API's source of truth."""
    return f"{PREFIX}:job:{job_id}"


def owner_jobs(owner: str) -> str:
    """Sorted set of an API key's job ids by creation time (listing, newest first)."""
    return f"{PREFIX}:owner:{owner}"


def owner_jobs_in(owner: str, status: str) -> str:
    """Sorted set of an API key's job ids in one status by creation time (listing by status)."""
    return f"{PREFIX}:owner:{owner}:{status}"


def queued_jobs(queue: str) -> str:
    """Sorted set of a pool's queued job ids by submission order (queue positions)."""
    return f"{PREFIX}:queued:{queue}"


def job_events(job_id: str) -> str:
    """Stream of a job's committed changes (the record after each move), written in the move's own
    transaction: what `GET /v1/jobs/{id}/events` streams and resumes from."""
    return f"{PREFIX}:jobevents:{job_id}"


OUTBOX = f"{PREFIX}:outbox"
"""Stream of what committed job moves owe (webhook events, batch ends), appended in each move's
transaction and carried out by the relay (`shared.relay`) through the consumer group below."""
OUTBOX_GROUP = "relay"

RUNNING_JOBS = f"{PREFIX}:running"
"""Sorted set of running job ids by execution deadline, for the sweeper."""
UNCONFIRMED = f"{PREFIX}:unconfirmed"
"""Sorted set of queued jobs whose queue message is not confirmed sent, by creation time: the sweeper
sends the message of any still there after a few seconds (the API failed between record and send)."""
START_DEADLINES = f"{PREFIX}:startdeadlines"
"""Sorted set of queued job ids by start deadline, for the sweeper's expiry."""
JOB_SEQUENCE = f"{PREFIX}:seq"
"""Counter giving queued jobs their order."""


# Workers and pools (shared.fleet).


def worker(name: str) -> str:
    """A worker's heartbeat (JSON); lapses one heartbeat period after the last beat."""
    return f"{PREFIX}:worker:{name}"


def pool_workers(queue: str) -> str:
    """Sorted set of a pool's workers by the time their heartbeat lapses: live workers are read per
    pool, pruned on read, never by scanning the keyspace."""
    return f"{PREFIX}:workers:{queue}"


def keep_warm(queue: str) -> str:
    """Set of the API keys (owner fingerprints) keeping a pool warm (`run_until_stopped`)."""
    return f"{PREFIX}:keepwarm:{queue}"


def prewarm(queue: str) -> str:
    """The model version a pending prewarm asks a pool's next worker to load."""
    return f"{PREFIX}:prewarm:{queue}"


def samples(version: str, queue: str) -> str:
    """List of finished runs (JSON) of one target, newest first: reliability, estimates, routing."""
    return f"{PREFIX}:samples:{version}:{queue}"


def cold_starts(version: str, queue: str) -> str:
    """List of recorded cold starts of one target, newest first."""
    return f"{PREFIX}:coldstarts:{version}:{queue}"


def rate_limit(kind: str, owner: str) -> str:
    """An API key's token bucket for one kind of call (`submit`, `prewarm`)."""
    return f"{PREFIX}:ratelimit:{kind}:{owner}"


# Idempotency (scheduler.idempotency).


def idempotency(owner: str, kind: str, key: str) -> str:
    """An `Idempotency-Key` reservation for a `job` or a `batch`; the client's key is hashed, never
    stored as sent. A job's keeps the form it had before batches had keys, so a submission retried
    across an upgrade still finds its job."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{PREFIX}:idem:{owner}:{digest}" if kind == "job" else f"{PREFIX}:idem-{kind}:{owner}:{digest}"


# Batches (shared.batchstore).


def owner_batches(owner: str) -> str:
    """Sorted set of an API key's batch ids by creation time (listing, newest first)."""
    return f"{PREFIX}:owner-batches:{owner}"


def batch(batch_id: str) -> str:
    """Hash: owner, size, timestamps, manifest key."""
    return f"{PREFIX}:batch:{batch_id}"


def batch_jobs(batch_id: str) -> str:
    """List of the batch's job ids in submission order."""
    return f"{batch(batch_id)}:jobs"


def batch_lines(batch_id: str) -> str:
    """List of each job's line in the submission, parallel to `batch_jobs`."""
    return f"{batch(batch_id)}:lines"


def batch_ended(batch_id: str) -> str:
    """Set of the batch's jobs that have ended."""
    return f"{batch(batch_id)}:ended"


def batch_manifest_claim(batch_id: str) -> str:
    """SET NX claim held by whichever process writes the manifest."""
    return f"{batch(batch_id)}:manifest-claim"


# Webhooks (shared.webhooks).


def webhook_secret(owner: str) -> str:
    """Hash: an API key's current signing secret and, during a rotation's overlap, the previous one."""
    return f"{PREFIX}:whsec:{owner}"


def webhook_deliveries(job_id: str) -> str:
    """Hash of a job's webhook deliveries, one field per delivery id."""
    return f"{PREFIX}:webhooks:{job_id}"


WEBHOOKS_DUE = f"{PREFIX}:webhooks:due"
"""Sorted set of `<job id>:<delivery id>` by the time its next attempt is due."""


def webhook_progress_gate(job_id: str) -> str:
    """Present for one progress interval after a job's `progress` event: at most one per interval."""
    return f"{PREFIX}:whprogress:{job_id}"


def webhook_attempt_lock(delivery_id: str) -> str:
    """Held while one attempt of a delivery is being made."""
    return f"{PREFIX}:whlock:{delivery_id}"


WEBHOOK_CONSUMERS = f"{PREFIX}:webhooks:consumers"
"""Sorted set of delivery workers whose retry poller runs, by the time that claim lapses."""


# Metrics (shared.metrics): what workers and the delivery worker count, for the API's `/metrics`.

METRICS_JOBS_ENDED = f"{PREFIX}:metrics:jobs-ended"
"""Hash: jobs that reached a terminal state, one field per `<status>|<queue>|<model version>`."""
METRICS_DURATIONS = f"{PREFIX}:metrics:durations"
"""Hash: job duration histograms, fields `<phase>|<queue>|<model version>|<bucket bound, sum or count>`."""
METRICS_WEBHOOKS = f"{PREFIX}:metrics:webhooks"
"""Hash: webhook delivery attempts, one field per outcome."""
