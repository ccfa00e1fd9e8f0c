"""The gate every protected request passes: authenticate, rate limit, ask the policy, audit."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ..log import current_project, current_request_id
from ..protocol import errors
from ..security.auth import Principal, bearer_token
from ..security.policy import PolicyUnavailable
from ..security.policy_input import policy_input
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
    hidden: errors.ApiError | None = None,
) -> Principal:
    """Admit the request for `action` on `resource`, or raise the OpenAI-shaped error.

    `token` overrides the `Authorization` header (WebSocket subprotocol credentials); a given
    `principal` (the talk page, which has no key) skips authentication, never the rest. An entry
    point that must first read what it acts on calls `authenticate`, then `authorize`.
    """
    if principal is None:
        principal = await authenticate(request, action, token=token)
    await authorize(request, principal, action, resource, transport=transport, hidden=hidden)
    return principal


async def authenticate(request: web.Request, action: str, *, token: str | None = None) -> Principal:
    """Who is calling (the auth-failure throttle and audit included); nothing is admitted yet."""
    services = request.app[SERVICES]
    principal = await _authenticate(request, services, action, None, token)
    request[PRINCIPAL] = principal
    # per-project limits may be keyed by name: what is decided next (a session's lifetime) needs it
    await services.remember_project(principal.project_id)
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
    """Rate limit and ask the policy about `principal` doing `action` on `resource`. `hidden`:
    the error to answer when the policy refuses something of another project (a 404, so that
    another project's ids look like ids that never existed)."""
    services = request.app[SERVICES]
    request[PRINCIPAL] = principal
    current_project.set(principal.project_id)  # the request's log lines name it (the middleware resets it)
    await services.remember_project(principal.project_id)  # (a principal that skipped authenticate())
    request_info = {
        "method": request.method,
        "path": request.path,
        "transport": transport,
        "time": time.time(),
        "remote": request.remote,
    }
    request[RATE_STATUS] = await admit(services, principal, action, resource, request_info, hidden=hidden)


async def admit(
    services: GatewayServices,
    principal: Principal,
    action: str,
    resource: dict[str, Any] | None,
    request_info: dict[str, Any],
    *,
    hidden: errors.ApiError | None = None,
) -> LimitStatus:
    """Rate limit, then the policy, for an authenticated principal (audited when refused)."""
    status = services.limiter.check(principal.project_id, principal.owning_key)
    metrics = services.metrics
    metrics.rate_limit_decisions.labels(
        limit="requests", result="allowed" if status.allowed else "throttled"
    ).inc()
    if not status.allowed:
        metrics.rate_limited.labels(scope=status.scope).inc()
        repeats = f"{principal.credential_id} {status.scope}"
        _audit(services, action, "rate_limited", 429, principal, resource, repeats, scope=status.scope)
        raise errors.rate_limited(status.scope, status.limit, status.retry_after_s)

    try:
        decision = await services.policy.decide(policy_input(principal, action, resource, request_info))
    except PolicyUnavailable as exc:
        metrics.policy_decisions.labels(action=action, result="unavailable").inc()
        _audit(services, action, "policy_unavailable", 503, principal, resource, error=str(exc))
        raise errors.ApiError(
            503,
            "The access policy could not be evaluated; the request was refused.",
            type=errors.SERVER_ERROR,
            code="policy_unavailable",
        ) from None
    metrics.policy_decisions.labels(action=action, result="allowed" if decision.allow else "denied").inc()
    services.events.policy_decision(action, decision.allow, decision.reason, principal.project_id)
    if not decision.allow:
        metrics.policy_denials.labels(action=action).inc()
        foreign = (resource or {}).get("project_id") not in (None, principal.project_id)
        if hidden is not None and foreign:
            _audit(services, action, "denied", hidden.status, principal, resource, reason=decision.reason)
            raise hidden
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
    services.metrics.rate_limit_decisions.labels(
        limit="auth_failures", result="allowed" if wait is None else "throttled"
    ).inc()
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
