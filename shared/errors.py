"""The one error family, the one set of error codes, and the one function that renders an error.

The HTTP status and the error code sit on each class; a job's `error.code` uses the same codes.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Every error code a client can see, in an HTTP error body or a job's `error`."""

    INVALID_INPUT = "invalid_input"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    NO_CAPACITY = "no_capacity"
    INVALID_TRANSITION = "invalid_transition"
    ALREADY_FINISHED = "already_finished"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    BAD_REQUEST = "bad_request"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"
    # Job outcomes.
    CANCELED = "canceled"
    EXPIRED = "expired"
    TIMEOUT = "timeout"
    WORKER_LOST = "worker_lost"
    OUT_OF_MEMORY = "out_of_memory"
    MODEL_UNAVAILABLE = "model_unavailable"
    STORAGE_UNAVAILABLE = "storage_unavailable"


def error_body(code: ErrorCode, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    """`{"error": {"code", "message", "field"?, ...}}`: the body of every error response."""
    error: dict[str, Any] = {"code": code.value, "message": message}
    if field:
        error["field"] = field
    return {"error": error | extra}


class ReelForgeError(Exception):
    """Base of every error ReelForge raises on purpose."""

    status_code = 500
    code = ErrorCode.INTERNAL

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.field)

    def headers(self) -> dict[str, str]:
        return {}


class Unauthorized(ReelForgeError):
    """Missing or unknown API key."""

    status_code = 401
    code = ErrorCode.UNAUTHORIZED


class NotFound(ReelForgeError):
    """No such resource visible to this API key."""

    status_code = 404
    code = ErrorCode.NOT_FOUND


class InvalidInput(ReelForgeError):
    """A request field breaks a rule; the message names the field and the rule."""

    status_code = 422
    code = ErrorCode.INVALID_INPUT


class InvalidLines(InvalidInput):
    """Lines of a batch that break a rule; the batch is refused whole, every bad line listed."""

    MAX_REPORTED = 100

    def __init__(self, problems: list[dict[str, Any]], status_code: int = 422) -> None:
        first = problems[0]
        super().__init__(first["message"], field=first.get("field"))
        self.problems = problems
        self.status_code = status_code
        self.code = ErrorCode(first["code"])

    def body(self) -> dict[str, Any]:
        line = self.problems[0].get("line")
        if line is None:
            return super().body()
        listed = self.problems[: self.MAX_REPORTED]
        return error_body(
            self.code, self.message, self.field, line=line, invalid_lines=len(self.problems), errors=listed
        )


class NoCapacity(ReelForgeError):
    """No configured pool serves the requested model version / GPU / region."""

    status_code = 422
    code = ErrorCode.NO_CAPACITY


class InvalidTransition(ReelForgeError):
    """A state move that its lifecycle forbids (e.g. a finished job moving backwards)."""

    status_code = 409
    code = ErrorCode.INVALID_TRANSITION


class AlreadyFinished(ReelForgeError):
    """The job is already in a terminal state; the request changed nothing."""

    status_code = 409
    code = ErrorCode.ALREADY_FINISHED


class Unavailable(ReelForgeError):
    """A dependency (Redis, the queue, storage) is unreachable; retrying later may succeed."""

    status_code = 503
    code = ErrorCode.UNAVAILABLE
    retry_after_s = 5

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class RateLimited(ReelForgeError):
    """The API key sent more than its rate allows; `Retry-After` says when to try again."""

    status_code = 429
    code = ErrorCode.RATE_LIMITED

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, round(retry_after_s))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class ModelNotAvailable(ReelForgeError):
    """The worker cannot load the model version (weights absent from the local cache)."""

    code = ErrorCode.MODEL_UNAVAILABLE


class StorageError(ReelForgeError):
    """Object storage refused or did not answer an upload or lookup."""

    code = ErrorCode.STORAGE_UNAVAILABLE


class JobTimeout(ReelForgeError):
    """The job ran past its execution deadline."""

    code = ErrorCode.TIMEOUT
