"""`rate_limits` and `project_limits`: what one project (and one key) may do per minute and at once;
`shared_limits`: where several replicas keep those limits together (Redis)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from ..security.secret_refs import check_reference
from .section import Section
from .telemetry import RedisUrl, check_redis_password


class RateLimits(Section):
    """Limits for one project (the defaults apply to every project without an override)."""

    requests_per_minute: int = Field(600, ge=1, description="REST requests per minute per project.")
    requests_per_minute_per_key: int = Field(300, ge=1, description="REST requests per minute per key.")
    concurrent_sessions: int = Field(20, ge=1, description="Open realtime sessions per project.")
    concurrent_sessions_per_key: int = Field(10, ge=1, description="Open realtime sessions per key.")
    max_session_seconds: int = Field(3600, ge=10, le=86_400, description="Realtime session lifetime cap.")


class SharedLimitsSettings(Section):
    """Where replicas keep the limits they share (requests per minute, concurrent sessions, failed
    authentications): in Redis when `redis_url` is set; otherwise each process keeps its own."""

    redis_url: RedisUrl | None = Field(
        None,
        description="Redis holding the limits of every replica: `redis://[user:password@]host:port/db`, "
        "`rediss://…` (TLS) or `unix:///path/redis.sock`; none: each process limits on its own.",
    )
    redis_password: str | None = Field(
        None,
        description="Redis password as a literal or a reference (`env:`, `file:`, `vault:`), read at start "
        "and refreshed; instead of a password in `redis_url`.",
    )
    key_prefix: str = Field("ovos-realtime:limits:", min_length=1, description="Prefix of the Redis keys.")
    timeout_seconds: float = Field(
        0.25,
        gt=0,
        le=5,
        description="Longest wait for Redis on one check; past it (or with Redis down) this replica limits "
        "on its own until Redis answers again.",
    )
    lease_seconds: float = Field(
        15.0,
        ge=3,
        le=300,
        description="A replica's session slots count while its lease (renewed every third of this) lives: "
        "the slots of a replica that was killed are freed this long after.",
    )

    @field_validator("redis_password")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        return check_reference(value)

    @model_validator(mode="after")
    def _password_needs_url(self) -> SharedLimitsSettings:
        check_redis_password(self.redis_url, self.redis_password)
        return self
