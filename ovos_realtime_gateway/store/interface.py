"""`Store`: what the gateway asks of its persistent state, whichever backend keeps it (the embedded
sqlite file, or PostgreSQL shared by replicas). Every method is async and never blocks the loop."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Protocol

from .item_ledger import ItemChanges
from .purge import PurgeResult
from .records import ApiKey, AuditEntry, ClientSecret, ClosedRecord, Project, SessionRecord, StoredPolicy

# Every table the store keeps, in the order rows can be inserted (foreign keys point backwards).
TABLES = (
    "projects",
    "api_keys",
    "sessions",
    "client_secrets",
    "calls",
    "conversation_items",
    "audit_log",
    "policies",
)


class StoreUnavailable(Exception):
    """The store cannot be reached (PostgreSQL down, refused, wrong password): says where and why."""


class Store(Protocol):
    """The gateway's persistent state: keys, projects, secrets, sessions, conversations, calls and
    the audit trail. Implemented by `SqliteStore` and `PostgresStore`."""

    observe_write: Callable[[str, float], None]

    @property
    def where(self) -> str:
        """Where the rows live, for messages (a path, or a URL without its password)."""
        ...

    async def close(self) -> None: ...
    async def migrate(self, target: int = ...) -> list[int]: ...
    async def schema_version(self) -> int: ...
    async def ping(self) -> bool: ...

    async def ensure_project(self, name: str) -> tuple[Project, bool]: ...
    async def get_project(self, project_id: str) -> Project | None: ...
    async def list_projects(self) -> list[Project]: ...

    async def insert_api_key(self, key: ApiKey) -> None: ...
    async def get_api_key(self, key_id: str) -> ApiKey | None: ...
    async def list_api_keys(self, project_id: str | None = None) -> list[ApiKey]: ...
    async def update_api_key(self, key_id: str, **changes: Any) -> None: ...
    async def rotate_api_key(self, old_id: str, new_key: ApiKey, old_expires_at: int) -> None: ...
    async def unusable_keys(self, key_ids: Iterable[str], now: float) -> set[str]: ...

    async def create_client_secret(self, secret: ClientSecret, session: SessionRecord) -> None: ...
    async def get_client_secret(self, secret_id: str) -> ClientSecret | None: ...
    async def save_session(self, session: SessionRecord) -> None: ...
    async def save_call(self, call: dict[str, Any]) -> None: ...
    async def list_calls(self, project_id: str | None = None) -> list[dict[str, Any]]: ...
    async def close_orphans(
        self, now: int, live: Collection[str], reason: str, unheld: bool = True
    ) -> list[ClosedRecord]: ...
    async def reopen_lost(
        self, now: int, replica_id: str, session_ids: Collection[str], call_ids: Collection[str]
    ) -> int: ...
    async def get_session(self, session_id: str) -> SessionRecord | None: ...
    async def list_sessions(self, project_id: str) -> list[SessionRecord]: ...
    async def write_items(self, session_id: str, changes: ItemChanges) -> None: ...
    async def list_items(self, session_id: str) -> list[dict[str, Any]]: ...

    async def write_audit(self, entries: Sequence[AuditEntry]) -> None: ...
    async def audit_rows(self, request_id: str | None = None) -> list[dict[str, Any]]: ...

    async def save_policy(self, policy: str | None, sha256: str | None, applied_at: int) -> int:
        """Store the policy every replica decides with from now (None: their own `policy_file`);
        its version, one above the newest."""
        ...

    async def latest_policy(self, after: int) -> StoredPolicy | None:
        """The newest stored policy if its version is above `after` (None: nothing newer)."""
        ...

    async def delete_batch(self, table: str, cutoff: float, now: float, limit: int) -> int: ...
    async def checkpoint(self) -> bool: ...
    async def purge(
        self, *, session_id: str | None = None, project_id: str | None = None, before: float | None = None
    ) -> PurgeResult: ...
    async def count(self, table: str) -> int: ...


def orphan_filter(live: Collection[str], unheld: bool) -> tuple[str, list[str]]:
    """The condition on `replica_id` of records no live replica holds (`?` placeholders; with
    `unheld`, rows written before replicas were recorded too), and its arguments."""
    marks = ", ".join("?" * len(live)) or "null"
    held_elsewhere = f"(replica_id is not null and replica_id not in ({marks}))"
    return (f"({held_elsewhere} or replica_id is null)" if unheld else held_elsewhere), sorted(live)


def lost_filter(replica_id: str, ids: Collection[str]) -> tuple[str, list[str]]:
    """The condition (`?` placeholders) of rows `replica_id` holds among `ids` that another replica
    closed as lost (`replica_lost`), and its arguments."""
    marks = ", ".join("?" * len(ids)) or "null"
    return f"replica_id = ? and end_reason = 'replica_lost' and id in ({marks})", [replica_id, *sorted(ids)]


def audit_row(entry: AuditEntry, audit_id: str) -> dict[str, Any]:
    """The `audit_log` row of `entry` (its detail as sorted JSON), for either backend."""
    return {
        "id": audit_id,
        "ts": entry.ts,
        "request_id": entry.request_id,
        "project_id": entry.project_id,
        "principal": entry.principal,
        "action": entry.action,
        "resource": entry.resource,
        "decision": entry.decision,
        "status": entry.status,
        "detail": json.dumps(entry.detail, sort_keys=True),
    }
