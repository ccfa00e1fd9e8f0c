"""`cluster`: replicas of one gateway on a shared store, finding each other through Redis."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from ..security.secret_refs import check_reference
from .section import Section
from .telemetry import RedisUrl, check_redis_password


class ClusterSettings(Section):
    """Replicas behind one load balancer: which replica holds each live session and call, and the
    news every replica must hear at once (revocations, policy changes), kept in Redis when
    `redis_url` is set; otherwise this gateway is alone (the embedded default)."""

    redis_url: RedisUrl | None = Field(
        None,
        description="Redis where replicas register the live sessions and calls they hold and tell each "
        "other of revocations and policy changes: `redis://[user:password@]host:port/db`, `rediss://…` "
        "or `unix:///path/redis.sock`; none: this gateway runs alone.",
    )
    redis_password: str | None = Field(
        None,
        description="Redis password as a literal or a reference (`env:`, `file:`, `vault:`), instead of a "
        "password in `redis_url`.",
    )
    key_prefix: str = Field("ovos-realtime:cluster:", min_length=1, description="Prefix of the Redis keys.")
    replica_url: str | None = Field(
        None,
        description="Base URL at which the other replicas reach this one (e.g. `http://10.1.2.3:8080`, a "
        "pod's address); none: `http://<host>:<port>` of this gateway's listener.",
    )
    hop_secret: str | None = Field(
        None,
        description="Secret every replica shares (a literal or `env:`/`file:`/`vault:`), authenticating "
        "the requests one replica forwards to another; required with `redis_url`.",
    )
    timeout_seconds: float = Field(
        0.25,
        gt=0,
        le=5,
        description="Longest wait for Redis on one registry call; past it (or with Redis down) a request "
        "for another replica's call fails at once, and this replica's own registrations are written when "
        "Redis answers again.",
    )
    lease_seconds: float = Field(
        5.0,
        ge=1,
        le=120,
        description="A replica counts as alive while its lease (renewed every third of this) lives; the "
        "sessions and calls of a replica that stopped renewing are closed by the others after it.",
    )

    @field_validator("redis_password", "hop_secret")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        return check_reference(value)

    @field_validator("replica_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ClusterSettings:
        check_redis_password(self.redis_url, self.redis_password)
        if self.redis_url is not None and self.hop_secret is None:
            raise ValueError("a cluster (redis_url) needs hop_secret, shared by every replica")
        return self
