"""The gate every protected entry point passes, whatever carries the request (REST, the realtime
WebSocket, the device microphone, a call's sideband, a SIP INVITE): authenticate, rate limit, ask
the policy, audit. It knows the request only as a `Caller`; no web framework is imported here."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..events import EventBridge
from ..log import current_project, current_request_id
from ..observability.audit import AuditWriter
from ..observability.metrics import GatewayMetrics
from ..protocol import errors
from ..store import AuditEntry
from .auth import Authenticator, Principal, bearer_token
from .policy import PolicyEngine, PolicyUnavailable
from .policy_input import policy_input
from .ratelimit import FailureThrottle, LimitStatus, RequestLimits

HOP_CLIENT = "ovos_realtime.hop_client"  # on a request another replica forwarded (signed): its client


def _digest(token: str) -> bytes:
    """What tokens are compared by: equal lengths, so the comparison's time says nothing of either."""
    return hashlib.sha256(token.encode()).digest()


class _Request(Protocol):
    """What `Caller.of` reads of a web request (an aiohttp `web.Request` is one)."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def remote(self) -> str | None: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    def get(self, key: str, /) -> Any: ...


@dataclass(frozen=True)
class Caller:
    """What the gate sees of a request: where it came from and the credential it carried."""

    method: str
    path: str
    remote: str | None
    authorization: str | None = None  # the `Authorization` header, as sent
    hopped: bool = False  # forwarded by another replica, which counted it against the rate limit

    @classmethod
    def of(cls, request: _Request) -> Caller:
        """The request's caller; on a verified hop (`HOP_CLIENT`), the client the hop names."""
        hop_client = request.get(HOP_CLIENT)
        remote = hop_client if hop_client is not None else request.remote
        authorization = request.headers.get("Authorization")
        return cls(request.method, request.path, remote, authorization, hop_client is not None)


class Gate:
    """Authentication (with the auth-failure throttle), rate limits, the policy and the audit trail."""

    def __init__(
        self,
        auth: Authenticator,
        throttle: FailureThrottle,
        limiter: RequestLimits,
        policy: PolicyEngine,
        audit: AuditWriter,
        metrics: GatewayMetrics,
        events: EventBridge,
        failures_per_minute: Callable[[], int],
        remember_project: Callable[[str], Awaitable[None]],
    ) -> None:
        self.auth = auth
        self.throttle = throttle
        self.limiter = limiter
        self.policy = policy
        self.audit = audit
        self.metrics = metrics
        self.events = events
        self.failures_per_minute = failures_per_minute
        self.remember_project = remember_project

    async def guard(
        self,
        caller: Caller,
        action: str,
        resource: dict[str, Any] | None = None,
        *,
        transport: str = "rest",
        token: str | None = None,
        principal: Principal | None = None,
        hidden: errors.ApiError | None = None,
    ) -> tuple[Principal, LimitStatus]:
        """Admit the caller for `action` on `resource`, or raise the OpenAI-shaped error.

        `token` overrides the `Authorization` header (WebSocket subprotocol credentials); a given
        `principal` (the talk page, which has no key) skips authentication, never the rest. An entry
        point that must first read what it acts on calls `authenticate`, then `authorize`.
        """
        if principal is None:
            principal = await self.authenticate(caller, action, token=token)
        status = await self.authorize(caller, principal, action, resource, transport=transport, hidden=hidden)
        return principal, status

    async def _unthrottled(self, caller: Caller, action: str) -> str:
        """The caller's address, unless the auth-failure throttle holds it (then the 429)."""
        address = caller.remote or "unknown"
        wait = await self.throttle.blocked(address)
        self.metrics.rate_limit_decisions.labels(
            limit="auth_failures", result="allowed" if wait is None else "throttled"
        ).inc()
        if wait is not None:
            self.metrics.auth_failures.labels(reason="throttled").inc()
            self.record(action, "throttled", 429, None, None, address, remote=address)
            limit = self.failures_per_minute()
            raise errors.rate_limited(f"failed authentications from {address}", limit, wait)
        return address

    async def authenticate(self, caller: Caller, action: str, *, token: str | None = None) -> Principal:
        """Who is calling (the auth-failure throttle and audit included); nothing is admitted yet."""
        address = await self._unthrottled(caller, action)
        if token is None:
            token = bearer_token(caller.authorization)
        try:
            principal = await self.auth.authenticate(token)
        except errors.ApiError as exc:
            await self.throttle.failed(address)
            reason = "missing" if token is None else (exc.code or "invalid")
            self.metrics.auth_failures.labels(reason=reason).inc()
            self.record(action, "unauthenticated", exc.status, None, None, reason=reason, remote=address)
            raise
        # per-project limits may be keyed by name: what is decided next (a session's lifetime) needs it
        await self.remember_project(principal.project_id)
        return principal

    async def check_token(self, caller: Caller, action: str, expected: str) -> None:
        """Admit a caller whose bearer token is `expected`, an operator's secret (`metrics_token`),
        not a project key: compared in constant time, behind the same auth-failure throttle. A
        refusal is counted and audited as one row per address and window (a scraper retries)."""
        address = await self._unthrottled(caller, action)
        presented = bearer_token(caller.authorization)
        if presented is not None and hmac.compare_digest(_digest(presented), _digest(expected)):
            return
        await self.throttle.failed(address)
        reason = "missing" if presented is None else "invalid_token"
        self.metrics.auth_failures.labels(reason=reason).inc()
        self.record(
            action, "unauthenticated", 401, None, None, f"{address} {reason}", reason=reason, remote=address
        )
        raise errors.invalid_metrics_token(presented)

    async def authorize(
        self,
        caller: Caller,
        principal: Principal,
        action: str,
        resource: dict[str, Any] | None,
        *,
        transport: str = "rest",
        hidden: errors.ApiError | None = None,
    ) -> LimitStatus:
        """Rate limit and ask the policy about `principal` doing `action` on `resource`. `hidden`:
        the error to answer when the policy refuses something of another project (a 404, so that
        another project's ids look like ids that never existed)."""
        current_project.set(principal.project_id)  # the log lines name it (the middleware resets it)
        await self.remember_project(principal.project_id)  # (a principal that skipped authenticate())
        request_info = {
            "method": caller.method,
            "path": caller.path,
            "transport": transport,
            "time": time.time(),
            "remote": caller.remote,
        }
        return await self.admit(
            principal, action, resource, request_info, hidden=hidden, count=not caller.hopped
        )

    async def admit(
        self,
        principal: Principal,
        action: str,
        resource: dict[str, Any] | None,
        request_info: dict[str, Any],
        *,
        hidden: errors.ApiError | None = None,
        count: bool = True,
    ) -> LimitStatus:
        """Rate limit, then the policy, for an authenticated principal (audited when refused).
        `count=False`: a request the replica that forwarded it counted already (not twice)."""
        metrics = self.metrics
        if count:
            status = await self.limiter.check(principal.project_id, principal.owning_key)
            metrics.rate_limit_decisions.labels(
                limit="requests", result="allowed" if status.allowed else "throttled"
            ).inc()
        else:
            status = self.limiter.peek(principal.project_id, principal.owning_key)
        if not status.allowed:
            metrics.rate_limited.labels(scope=status.scope).inc()
            repeats = f"{principal.credential_id} {status.scope}"
            self.record(action, "rate_limited", 429, principal, resource, repeats, scope=status.scope)
            raise errors.rate_limited(status.scope, status.limit, status.retry_after_s)

        try:
            decision = await self.policy.decide(policy_input(principal, action, resource, request_info))
        except PolicyUnavailable as exc:
            metrics.policy_decisions.labels(action=action, result="unavailable").inc()
            self.record(action, "policy_unavailable", 503, principal, resource, error=str(exc))
            raise errors.ApiError(
                503,
                "The access policy could not be evaluated; the request was refused.",
                type=errors.SERVER_ERROR,
                code="policy_unavailable",
            ) from None
        metrics.policy_decisions.labels(action=action, result="allowed" if decision.allow else "denied").inc()
        self.events.policy_decision(action, decision.allow, decision.reason, principal.project_id)
        if not decision.allow:
            metrics.policy_denials.labels(action=action).inc()
            foreign = (resource or {}).get("project_id") not in (None, principal.project_id)
            if hidden is not None and foreign:
                self.record(action, "denied", hidden.status, principal, resource, reason=decision.reason)
                raise hidden
            self.record(action, "denied", 403, principal, resource, reason=decision.reason)
            raise errors.permission_denied(decision.reason)
        return status

    def allowed(
        self, principal: Principal | None, action: str, resource: dict[str, Any], status: int = 200
    ) -> None:
        """Record a successful state-changing action in the audit trail."""
        self.record(action, "allowed", status, principal, resource)

    def record(
        self,
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
            self.audit.record(entry)
        else:
            self.audit.record_repeated(f"{decision} {repeats}", entry)
