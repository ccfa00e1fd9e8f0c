"""REST's side of the gate (`security/gate.py`): a handler's request becomes a `Caller`, and who
was admitted (and their rate-limit status) is kept on the request for the response headers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..protocol import errors
from ..security.auth import Principal
from ..security.gate import Caller
from ..services import SERVICES

PRINCIPAL = "ovos_realtime.principal"
RATE_STATUS = "ovos_realtime.rate_status"


async def guard(
    request: web.Request,
    action: str,
    resource: dict[str, Any] | None = None,
    *,
    principal: Principal | None = None,
) -> Principal:
    """Admit the request for `action` on `resource` (see `Gate.guard`)."""
    if principal is None:
        principal = await authenticate(request, action)
    await authorize(request, principal, action, resource)
    return principal


async def authenticate(request: web.Request, action: str) -> Principal:
    """Who is calling; nothing is admitted yet (see `Gate.authenticate`)."""
    principal = await request.app[SERVICES].gate.authenticate(Caller.of(request), action)
    request[PRINCIPAL] = principal
    return principal


async def authorize(
    request: web.Request,
    principal: Principal,
    action: str,
    resource: dict[str, Any] | None,
    *,
    transport: str = "rest",
    hidden: errors.ApiError | None = None,
) -> None:
    """Rate limit and ask the policy (see `Gate.authorize`)."""
    request[PRINCIPAL] = principal
    gate = request.app[SERVICES].gate
    request[RATE_STATUS] = await gate.authorize(
        Caller.of(request), principal, action, resource, transport=transport, hidden=hidden
    )


def audit_success(request: web.Request, action: str, resource: dict[str, Any], status: int = 200) -> None:
    """Record a successful state-changing action in the audit trail."""
    request.app[SERVICES].gate.allowed(request.get(PRINCIPAL), action, resource, status)
