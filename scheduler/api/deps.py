"""What the routes depend on, injected with types: the services and the authenticated caller.

Routes declare `services: ServicesDep` and `owner: Owner`; nothing else reaches into `app.state`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from scheduler.api.auth import check_key
from scheduler.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def authenticated_owner(request: Request, services: ServicesDep) -> str:
    """The caller's owner fingerprint, from its bearer key; 401 otherwise."""
    return check_key(request.headers.get("authorization"), services.settings.api_keys)


Owner = Annotated[str, Depends(authenticated_owner)]
