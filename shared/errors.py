"""The one error family. The HTTP status and the job error code sit on the class."""

from __future__ import annotations


class ReelForgeError(Exception):
    """Base of every error ReelForge raises on purpose."""

    status_code = 500
    code = "internal"
    retryable = False

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body


class Unauthorized(ReelForgeError):
    """Missing or unknown API key."""

    status_code = 401
    code = "unauthorized"


class NotFound(ReelForgeError):
    """No such resource visible to this API key."""

    status_code = 404
    code = "not_found"


class InvalidInput(ReelForgeError):
    """A request field breaks a rule; the message names the field and the rule."""

    status_code = 422
    code = "invalid_input"


class NoCapacity(ReelForgeError):
    """No configured pool serves the requested model version / GPU / region."""

    status_code = 422
    code = "no_capacity"


class InvalidTransition(ReelForgeError):
    """A job-state move that the state machine forbids (e.g. a finished job moving backwards)."""

    status_code = 409
    code = "invalid_transition"


class Unavailable(ReelForgeError):
    """A dependency (Redis, storage) is unreachable; retrying later may succeed."""

    status_code = 503
    code = "unavailable"
    retryable = True


class ModelNotAvailable(ReelForgeError):
    """The worker cannot load the model version (weights absent from the local cache)."""

    code = "model_unavailable"


class StorageError(ReelForgeError):
    """Upload or lookup in object storage failed."""

    code = "storage"
    retryable = True


class AlreadyFinished(ReelForgeError):
    """The job is already in a terminal state; the request changed nothing."""

    status_code = 409
    code = "already_finished"


class JobTimeout(ReelForgeError):
    """The job ran past its execution deadline."""

    code = "timeout"


class WarmupTimeout(ReelForgeError):
    """No worker became warm for the target in time."""

    status_code = 504
    code = "warmup_timeout"
    retryable = True
