"""What the routes depend on, injected with types: the services and the authenticated caller.

Routes declare `services: ServicesDep` and `owner: Owner`; nothing else reaches into `app.state`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from scheduler.api.auth import check_key
from scheduler.api.limits import RateLimiter
from scheduler.services import Services
from shared import keys
from shared.errors import RateLimited
from shared.paging import parse_cursor
from shared.schemas import ErrorBody
from shared.settings import Settings


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


bearer = HTTPBearer(auto_error=False, description="An API key from REELFORGE_API_KEYS")


def authenticated_owner(
    request: Request,
    services: ServicesDep,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The caller's owner fingerprint, from its bearer key; 401 otherwise. (The `bearer` dependency
    declares the security scheme in the OpenAPI; the key is checked here, in constant time.)"""
    return check_key(request.headers.get("authorization"), services.settings.api_keys)


Owner = Annotated[str, Depends(authenticated_owner)]


def _limited(kind: str, per_s: Callable[[Settings], float], burst: Callable[[Settings], int]) -> Any:
    def allowance(owner: Owner, services: ServicesDep) -> str:
        settings = services.settings
        limiter = RateLimiter(services.redis, per_s(settings), burst(settings))
        wait_s = limiter.wait_s(keys.rate_limit(kind, owner))
        if wait_s:
            raise RateLimited(f"too many {kind} calls for this API key; retry in {wait_s:g}s", wait_s)
        return owner

    return allowance


SubmitOwner = Annotated[
    str, Depends(_limited("submit", lambda s: s.rate_limit_per_s, lambda s: s.rate_limit_burst))
]
"""The caller, once its submission rate allows one more (429 otherwise)."""
PrewarmOwner = Annotated[str, Depends(_limited("prewarm", lambda s: s.prewarm_rate_limit_per_s, lambda _: 5))]
"""The caller, once its prewarm rate allows one more (429 otherwise)."""


def _page_cursor(
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> float | None:
    """A listing's cursor: the creation time of the previous page's last item."""
    return parse_cursor(cursor)


PageCursor = Annotated[float | None, Depends(_page_cursor)]
"""Where a listing's page starts (None: at the newest)."""


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route answers, each with the error body."""
    return {status: {"model": ErrorBody, "description": ERROR_MEANINGS[status]} for status in statuses}


ERROR_MEANINGS = {
    400: "The body could not be read as JSON",
    401: "Missing or unknown API key",
    404: "No such resource for this API key",
    409: "The job or batch already finished; nothing changed",
    413: "The body is larger than the route allows",
    415: "The body's content type is not one the route reads",
    422: "A field breaks a rule; the error names the field and the rule",
    429: "Too many calls for this API key; see Retry-After",
    503: "The job store or queue is unreachable; see Retry-After",
}
COMMON_ERRORS = error_responses(400, 401, 413, 422, 429, 503)
"""What every authenticated route may answer."""
