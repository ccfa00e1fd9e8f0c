"""The Redis clients of the shared limits and the cluster: fail fast (no retries; with
`timeout_s`, short socket timeouts and no health checks) and read the password on each new
connection, so a refreshed `redis_password` is used without a restart."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .secret_refs import SecretValue

if TYPE_CHECKING:
    from redis.asyncio import Redis


def credentials(url: str, password: SecretValue | None) -> tuple[str, dict[str, Any]]:
    """The URL to connect to and, with `redis_password`, a credential provider reading the current
    secret on each new connection."""
    if password is None:
        return url, {}
    from redis.credentials import CredentialProvider

    parts = urlsplit(url)
    username, secret = parts.username, password

    class _Current(CredentialProvider):
        def get_credentials(self) -> tuple[str] | tuple[str, str]:
            return (username, secret.value) if username else (secret.value,)

    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=netloc)), {"credential_provider": _Current()}


def fail_fast_client(
    url: str, password: SecretValue | None, timeout_s: float | None = None, **options: Any
) -> Redis:
    """An asyncio client that never retries; with `timeout_s`, every connect and read is bounded
    by it and idle connections are not health-checked (a request pays no extra round trip)."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    if timeout_s is not None:
        bounded = {
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
            "health_check_interval": 0,
        }
        options = {**bounded, **options}
    connect_url, extra = credentials(url, password)
    return Redis.from_url(connect_url, retry=Retry(NoBackoff(), 0), **options, **extra)
