"""Row types of the store, one frozen dataclass per table."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    created_at: int


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    project_id: str
    salt: str
    hash: str
    hint: str
    created_at: int
    revoked_at: int | None = None
    expires_at: int | None = None
    rotated_to: str | None = None
    last_used_at: int | None = None

    def usable_at(self, now: float) -> bool:
        """Valid now: not revoked, and (if rotated) still inside its grace period."""
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at

    def status(self, now: float) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None:
            return "rotating" if now < self.expires_at else "expired"
        return "active"


@dataclass(frozen=True, slots=True)
class ClientSecret:
    id: str
    project_id: str
    key_id: str | None
    session_id: str
    salt: str
    hash: str
    created_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A realtime session: its full effective config and lifecycle timestamps."""

    id: str
    project_id: str
    type: str
    config: dict[str, Any]
    status: str
    created_at: int
    updated_at: int
    client_secret_id: str | None = None
    expires_at: int | None = None
    max_seconds: int | None = None  # a shorter lifetime cap set by its client secret
    replica_id: str | None = None  # the replica that holds (held) it live
    end_reason: str | None = None  # why it closed, when not by its client (`replica_lost`)

    def to_row(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "id": self.id,
            "project_id": self.project_id,
            "client_secret_id": self.client_secret_id,
            "type": self.type,
            "model": cfg.get("model"),
            "output_modalities": json.dumps(cfg.get("output_modalities")),
            "audio": json.dumps(cfg.get("audio")),
            "instructions": cfg.get("instructions"),
            "tools": json.dumps(cfg.get("tools")),
            "tool_choice": json.dumps(cfg.get("tool_choice")),
            "config": json.dumps(cfg),
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "expires_at": self.expires_at,
            "max_seconds": self.max_seconds,
            "replica_id": self.replica_id,
            "end_reason": self.end_reason,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SessionRecord:
        return cls(
            id=row["id"],
            project_id=row["project_id"],
            type=row["type"],
            config=json.loads(row["config"]),
            status=row["status"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            client_secret_id=row.get("client_secret_id"),
            expires_at=row.get("expires_at"),
            max_seconds=row.get("max_seconds"),
            replica_id=row.get("replica_id"),
            end_reason=row.get("end_reason"),
        )


@dataclass(frozen=True, slots=True)
class ClosedRecord:
    """A session or call closed because the replica holding it is gone (`close_orphans`)."""

    kind: str  # "session" | "call"
    id: str
    project_id: str
    replica_id: str | None  # the replica that held it (None: a row from before replicas were recorded)
    end_reason: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One decision or action, tied to the request that caused it."""

    ts: float
    request_id: str | None
    action: str
    decision: str
    status: int
    project_id: str | None = None
    principal: str | None = None
    resource: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    """One `ovos-realtime policy apply` (or `policy clear`): the Rego text every replica decides
    with from then on; `policy` None means "back to each replica's own `policy_file`"."""

    version: int
    policy: str | None
    sha256: str | None
    applied_at: int
