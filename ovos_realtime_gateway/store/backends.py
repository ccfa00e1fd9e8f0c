"""Which store a gateway uses: `store_url` unset is the embedded sqlite file in the data dir;
`postgresql://…` (or `postgres://…`) is a PostgreSQL database shared by replicas."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .interface import Store
from .sqlite import SqliteStore

if TYPE_CHECKING:
    from ..security.secret_refs import SecretValue
    from ..settings import GatewaySettings

SCHEMES = ("postgresql", "postgres")


def check_store_url(url: str, name: str = "store_url") -> str:
    """`url` if it names a PostgreSQL database; ValueError naming `name` and what is wrong (never
    the password)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number in range)
    except ValueError as exc:
        raise ValueError(f"{name} is not a URL ({exc})") from None
    if parts.scheme not in SCHEMES:
        scheme = parts.scheme or "none"
        unset = ", or leave store_url unset for the embedded sqlite store" if name == "store_url" else ""
        raise ValueError(
            f"{name} scheme {scheme!r} is not supported: give postgresql://USER@HOST:PORT/DB{unset}"
        )
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except Exception as exc:  # psycopg.ProgrammingError: libpq's own reason, e.g. a bad port
        secrets = [parts.password, *(v for k, v in parse_qsl(parts.query) if k == "password")]
        reason = str(exc)
        for secret in filter(None, secrets):
            reason = reason.replace(secret, "***")
        raise ValueError(f"{name} is not a valid PostgreSQL URL: {reason}") from None
    return url


def redact(url: str) -> str:
    """`url` with its password (in the user part or a `password=` parameter) replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    query = [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="/:*")))


def open_store(
    url: str | None,
    data_dir: Path,
    password: Callable[[], str | None] = lambda: None,
    pool_size: int = 10,
) -> Store:
    """The store `url` names (nothing is connected until its first use)."""
    if not url:
        return SqliteStore(data_dir)
    from .postgres import PostgresStore  # psycopg is imported only by gateways that use it

    return PostgresStore(check_store_url(url), password, where=redact(url), max_size=pool_size)


def store_for(settings: GatewaySettings, password: SecretValue | None = None) -> Store:
    """The store `settings` name; `password` is `store_password` (read when connecting)."""
    return open_store(
        settings.store_url,
        settings.resolved_data_dir,
        (lambda: password.value) if password is not None else (lambda: None),
        settings.store_pool_size,
    )
