"""`event_bridge` (events to a Redis stream) and `tracing` (OpenTelemetry spans over OTLP/HTTP)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator

from .section import Section


def check_redis_url(url: str) -> None:
    """Raise ValueError (with the password hidden) unless `url` is a Redis URL the client takes."""
    parts = urlsplit(url)
    problem = None
    if parts.scheme not in ("redis", "rediss", "unix"):
        problem = "the scheme must be redis://, rediss:// or unix://"
    elif parts.scheme == "unix" and not parts.path:
        problem = "a unix:// URL needs the socket's path (unix:///run/redis/redis.sock)"
    elif parts.scheme != "unix":
        try:
            port = parts.port
        except ValueError:
            port, problem = None, "the port is not a number from 0 to 65535"
        if problem is None and not parts.hostname:
            problem = "it names no host"
        db = parts.path.strip("/")
        if problem is None and db and not db.isdigit():
            problem = f"the database {db!r} is not a number"
        del port
    if problem is not None:
        shown = url if parts.password is None else url.replace(parts.password, "***")
        raise ValueError(f"{shown!r} is not a Redis URL: {problem}")


def _checked_redis_url(url: str) -> str:
    check_redis_url(url)
    return url


RedisUrl = Annotated[str, AfterValidator(_checked_redis_url)]
"""A setting that names a Redis server, checked by `check_redis_url`."""


def check_redis_password(url: str | None, password: str | None) -> None:
    """Raise ValueError unless `redis_password` goes with a `redis_url` that carries none itself."""
    if password is None:
        return
    if url is None:
        raise ValueError("redis_password is the password of redis_url: give redis_url too")
    if urlsplit(url).password is not None:
        raise ValueError("give the Redis password either in redis_url or in redis_password, not both")


class EventBridgeSettings(Section):
    """The event bridge: session, response, call and policy events to a Redis stream (off unless
    `redis_url` is set). Ids, timings and outcomes only; a slow or down Redis never holds up a
    session: events that cannot go out are dropped and counted (`ovos_realtime_events_dropped`)."""

    redis_url: RedisUrl | None = Field(
        None,
        description="Redis to publish to: `redis://[user:password@]host:port/db`, `rediss://…` (TLS) "
        "or `unix:///path/redis.sock`; none: the bridge is off.",
    )
    stream: str = Field(
        "ovos-realtime:events", min_length=1, description="Redis stream the events are added to."
    )
    max_stream_length: int = Field(
        100_000, ge=1, description="The stream is trimmed to about this many entries (`XADD MAXLEN ~`)."
    )
    queue_size: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="Events waiting in the gateway for Redis; past this, new events are dropped (counted).",
    )
    include_text: bool = Field(
        False,
        description="Add what the user typed or said and the answer's text to `response.done` events "
        "(personal data: off by default). Audio and credentials are never published.",
    )


class TracingSettings(Section):
    """OpenTelemetry traces, exported over OTLP/HTTP (protobuf); off unless `enabled`."""

    enabled: bool = Field(False, description="Record spans and export them to `otlp_endpoint`.")
    otlp_endpoint: str = Field(
        "http://127.0.0.1:4318/v1/traces",
        description="The collector's OTLP/HTTP traces URL (a bare `http://host:4318` gets `/v1/traces`).",
    )
    service_name: str = Field("ovos-realtime", min_length=1, description="`service.name` of the spans.")
    sample_ratio: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Share of new traces recorded (a `traceparent`'s own sampled flag is followed).",
    )
    max_queue_spans: int = Field(
        2048,
        ge=16,
        le=1_000_000,
        description="Ended spans waiting for export, at most; more are dropped and counted "
        "(`ovos_realtime_trace_spans_dropped_total`): a slow or dead collector never slows a session.",
    )
    export_timeout_seconds: float = Field(
        5.0, gt=0, le=60, description="How long one export to the collector may take."
    )

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http(s) URL such as http://collector:4318/v1/traces, not {url!r}")
        if parts.path in ("", "/"):
            return url.rstrip("/") + "/v1/traces"
        return url
