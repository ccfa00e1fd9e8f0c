"""Ordered, versioned schema migrations. Each one keeps every existing row.

`schema_migrations` records which versions ran. Migrations only add: tables, columns with
defaults, indexes. Never rename or drop in place; copy-and-swap if that is ever needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlite_utils import Database


def _v1_initial(db: Database) -> None:
    db.table("projects").create(
        {"id": str, "name": str, "created_at": int}, pk="id", not_null={"name", "created_at"}
    )
    db.table("projects").create_index(["name"], unique=True)
    db.table("api_keys").create(
        {
            "id": str,
            "project_id": str,
            "salt": str,
            "hash": str,
            "hint": str,
            "created_at": int,
            "revoked_at": int,
        },
        pk="id",
        foreign_keys=[("project_id", "projects", "id")],
        not_null={"project_id", "salt", "hash", "created_at"},
    )
    db.table("client_secrets").create(
        {
            "id": str,
            "project_id": str,
            "key_id": str,
            "session_id": str,
            "salt": str,
            "hash": str,
            "created_at": int,
            "expires_at": int,
        },
        pk="id",
        foreign_keys=[("project_id", "projects", "id")],
        not_null={"project_id", "salt", "hash", "created_at", "expires_at"},
    )
    db.table("sessions").create(
        {
            "id": str,
            "project_id": str,
            "client_secret_id": str,
            "type": str,
            "model": str,
            "output_modalities": str,
            "audio": str,
            "instructions": str,
            "tools": str,
            "tool_choice": str,
            "config": str,
            "status": str,
            "created_at": int,
            "updated_at": int,
            "expires_at": int,
        },
        pk="id",
        foreign_keys=[("project_id", "projects", "id")],
        not_null={"project_id", "type", "config", "status", "created_at", "updated_at"},
    )
    db.table("calls").create(
        {
            "id": str,
            "project_id": str,
            "session_id": str,
            "transport": str,
            "status": str,
            "created_at": int,
            "ended_at": int,
        },
        pk="id",
        foreign_keys=[("project_id", "projects", "id")],
        not_null={"project_id", "transport", "status", "created_at"},
    )
    db.table("audit_log").create(
        {
            "id": str,
            "ts": float,
            "request_id": str,
            "project_id": str,
            "principal": str,
            "action": str,
            "resource": str,
            "decision": str,
            "status": int,
            "detail": str,
        },
        pk="id",
    )


def _v2_key_rotation(db: Database) -> None:
    """Rotation: a rotated key stays valid until `expires_at`; `rotated_to` names its successor."""
    db.table("api_keys").add_column("expires_at", int)
    db.table("api_keys").add_column("rotated_to", str)
    db.table("api_keys").add_column("last_used_at", int)


def _v3_lookup_indexes(db: Database) -> None:
    db.table("audit_log").create_index(["request_id"], if_not_exists=True)
    db.table("audit_log").create_index(["project_id", "ts"], if_not_exists=True)
    db.table("sessions").create_index(["project_id"], if_not_exists=True)
    db.table("client_secrets").create_index(["project_id"], if_not_exists=True)
    db.table("calls").create_index(["project_id"], if_not_exists=True)


def _v4_conversation_items(db: Database) -> None:
    """Realtime sessions keep their conversation: one row per item, in order."""
    db.table("conversation_items").create(
        {"session_id": str, "item_id": str, "position": int, "item": str, "updated_at": int},
        pk=("session_id", "item_id"),
        foreign_keys=[("session_id", "sessions", "id")],
        not_null={"position", "item", "updated_at"},
    )
    db.table("conversation_items").create_index(["session_id", "position"], if_not_exists=True)


def _v5_session_lifetime(db: Database) -> None:
    """A client secret may cap the lifetime of the session it opens (`max_session_seconds`)."""
    db.table("sessions").add_column("max_seconds", int)


def _v6_retention_indexes(db: Database) -> None:
    """Retention deletes by age: old audit rows, ended sessions, expired client secrets."""
    db.table("audit_log").create_index(["ts"], if_not_exists=True)
    db.table("sessions").create_index(["status", "updated_at"], if_not_exists=True)
    db.table("client_secrets").create_index(["expires_at"], if_not_exists=True)


def _v7_call_history(db: Database) -> None:
    """Calls are written as they go (ringing, active, ended) and kept like sessions."""
    db.table("calls").add_column("end_reason", str)
    db.table("calls").create_index(["status", "ended_at"], if_not_exists=True)


def _v8_stored_policies(db: Database) -> None:
    """The Rego policy an operator applied to every replica (`policy apply`), newest version last."""
    db.table("policies").create(
        {"version": int, "policy": str, "sha256": str, "applied_at": int},
        pk="version",
        not_null={"applied_at"},
    )


def _v9_replica_holders(db: Database) -> None:
    """Replicas on one store: which replica held a session or call (`replica_id`); the others close
    the records of one that died, saying why (`sessions.end_reason`: `replica_lost`)."""
    db.table("sessions").add_column("replica_id", str)
    db.table("sessions").add_column("end_reason", str)
    db.table("calls").add_column("replica_id", str)


MIGRATIONS: list[tuple[int, str, Callable[[Database], None]]] = [
    (1, "initial schema", _v1_initial),
    (2, "key rotation columns", _v2_key_rotation),
    (3, "lookup indexes", _v3_lookup_indexes),
    (4, "conversation items", _v4_conversation_items),
    (5, "per-secret session lifetime", _v5_session_lifetime),
    (6, "retention indexes", _v6_retention_indexes),
    (7, "call history", _v7_call_history),
    (8, "stored policies", _v8_stored_policies),
    (9, "replica holders", _v9_replica_holders),
]
LATEST = MIGRATIONS[-1][0]


def current_version(db: Database) -> int:
    if "schema_migrations" not in db.table_names():
        return 0
    row = db.execute("select max(version) from schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate(db: Database, target: int = LATEST) -> list[int]:
    """Apply pending migrations up to `target`, each in its own transaction; return those applied."""
    if "schema_migrations" not in db.table_names():
        db.table("schema_migrations").create({"version": int, "name": str, "applied_at": int}, pk="version")
    applied: list[int] = []
    for version, name, step in MIGRATIONS:
        if version <= current_version(db) or version > target:
            continue
        with db.conn:
            step(db)
            db.table("schema_migrations").insert(
                {"version": version, "name": name, "applied_at": int(time.time())}
            )
        applied.append(version)
    return applied
