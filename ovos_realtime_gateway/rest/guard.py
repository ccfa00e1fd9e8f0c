"""The gate every protected request passes: authenticate, rate limit, ask the policy, audit."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ..log import current_project, current_request_id
from ..protocol import errors
from ..security.auth import Principal, bearer_token
from ..security.policy import PolicyUnavailable
from ..security.ratelimit import LimitStatus
from ..services import SERVICES, GatewayServices
from ..store import AuditEntry

PRINCIPAL = "ovos_realtime.principal"
RATE_STATUS = "ovos_realtime.rate_status"


def _audit(
    services: GatewayServices,
    action: str,
    decision: str,
    status: int,
    principal: Principal | None,
    resource: dict[str, Any] | None,
    repeats: str | None = None,
    **detail: Any,
) -> None:
    """Record a decision; one that a client keeps causing (`repeats` names the client) is counted
    into one row per window instead of a row per request."""
    entry = AuditEntry(
        ts=time.time(),
        request_id=current_request_id.get(),
        action=action,
        decision=decision,
        status=status,
        project_id=principal.project_id if principal else None,
        principal=principal.credential_id if principal else None,
        resource=(resource or {}).get("id"),
        detail=detail,
    )
    if repeats is None:
        services.audit.record(entry)
    else:
        services.audit.record_repeated(f"{decision} {repeats}", entry)


async def guard(
    request: web.Request,
    action: str,
    resource: dict[str, Any] | None = None,
    *,
    transport: str = "rest",
    token: str | None = None,
    principal: Principal | None = None,
) -> Principal:
    """Admit the request for `action` on `resource`, or raise the OpenAI-shaped error.

    `token` overrides the `Authorization` header (WebSocket subprotocol credentials); a given
    `principal` (the talk page, which has no key) skips authentication, never the rest.
    """
    services = request.app[SERVICES]
    if principal is None:
        principal = await _authenticate(request, services, action, resource, token)
    request[PRINCIPAL] = principal
    current_project.set(principal.project_id)  # the request's log lines name it (the middleware resets it)
    await services.remember_project(principal.project_id)

    request_info = {
        "method": request.method,
        "path": request.path,
        "transport": transport,
        "time": time.time(),
        "remote": request.remote,
    }
    request[RATE_STATUS] = await admit(services, principal, action, resource, request_info)
    return principal


async def admit(
    services: GatewayServices,
    principal: Principal,
    action: str,
    resource: dict[str, Any] | None,
    request_info: dict[str, Any],
) -> LimitStatus:
    """Rate limit, then the policy, for an authenticated principal (audited when refused)."""
    status = services.limiter.check(principal.project_id, principal.owning_key)
    if not status.allowed:
        services.metrics.rate_limited.labels(scope=status.scope).inc()
        repeats = f"{principal.credential_id} {status.scope}"
        _audit(services, action, "rate_limited", 429, principal, resource, repeats, scope=status.scope)
        raise errors.rate_limited(status.scope, status.limit, status.retry_after_s)

    policy_input = {
        "principal": principal.policy_input(),
        "project": {"id": principal.project_id},
        "action": action,
        "resource": resource or {},
        "request": request_info,
    }
    try:
        decision = await services.policy.decide(policy_input)
    except PolicyUnavailable as exc:
        _audit(services, action, "policy_unavailable", 503, principal, resource, error=str(exc))
        raise errors.ApiError(
            503,
            "The access policy could not be evaluated; the request was refused.",
            type=errors.SERVER_ERROR,
            code="policy_unavailable",
        ) from None
    if not decision.allow:
        services.metrics.policy_denials.labels(action=action).inc()
        _audit(services, action, "denied", 403, principal, resource, reason=decision.reason)
        raise errors.permission_denied(decision.reason)
    return status


async def _authenticate(
    request: web.Request,
    services: GatewayServices,
    action: str,
    resource: dict[str, Any] | None,
    token: str | None,
) -> Principal:
    address = request.remote or "unknown"
    wait = services.auth_throttle.blocked(address)
    if wait is not None:
        services.metrics.auth_failures.labels(reason="throttled").inc()
        _audit(services, action, "throttled", 429, None, resource, address, remote=address)
        limit = services.settings.auth_failures_per_minute
        raise errors.rate_limited(f"failed authentications from {address}", limit, wait)
    if token is None:
        token = bearer_token(request.headers.get("Authorization"))
    try:
        return await services.auth.authenticate(token)
    except errors.ApiError as exc:
        services.auth_throttle.failed(address)
        reason = "missing" if token is None else (exc.code or "invalid")
        services.metrics.auth_failures.labels(reason=reason).inc()
        _audit(services, action, "unauthenticated", exc.status, None, resource, reason=reason, remote=address)
        raise


def audit_success(request: web.Request, action: str, resource: dict[str, Any], status: int = 200) -> None:
    """Record a successful state-changing action in the audit trail."""
    principal = request.get(PRINCIPAL)
    _audit(request.app[SERVICES], action, "allowed", status, principal, resource)
