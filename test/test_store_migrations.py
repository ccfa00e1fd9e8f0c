"""The sqlite store: WAL mode, and an upgrade from schema v1 that keeps every row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlite_utils import Database

from ovos_realtime_gateway.store import migrations

from .gateway_process import cli


def test_upgrade_from_first_schema_keeps_rows(tmp_path: Path) -> None:
    path = tmp_path / "ovos-realtime.db"
    db = Database(path)
    assert migrations.migrate(db, target=1) == [1]
    db.table("projects").insert({"id": "proj_old", "name": "old", "created_at": 1})
    db.table("api_keys").insert(
        {
            "id": "key_0123456789abcdef",
            "project_id": "proj_old",
            "salt": "s",
            "hash": "h",
            "hint": "sk…",
            "created_at": 1,
        }
    )
    db.table("sessions").insert(
        {
            "id": "sess_old",
            "project_id": "proj_old",
            "type": "realtime",
            "config": "{}",
            "status": "closed",
            "created_at": 1,
            "updated_at": 2,
        }
    )
    db.table("audit_log").insert(
        {"id": "aud_1", "ts": 1.0, "action": "x", "decision": "allowed", "status": 200}
    )
    db.close()

    applied = cli("migrate", data_dir=tmp_path)
    assert f"schema version {migrations.LATEST}" in applied.stdout

    with sqlite3.connect(path) as conn:
        versions = conn.execute("select version from schema_migrations order by version").fetchall()
        assert versions == [(v,) for v in range(1, migrations.LATEST + 1)]
        key = conn.execute("select id, hash, expires_at, rotated_to from api_keys").fetchall()
        assert key == [("key_0123456789abcdef", "h", None, None)]
        assert conn.execute("select id, status from sessions").fetchall() == [("sess_old", "closed")]
        assert conn.execute("select count(*) from audit_log").fetchone() == (1,)
        assert conn.execute("pragma journal_mode").fetchone() == ("wal",)
        indexes = {row[1] for row in conn.execute("pragma index_list(audit_log)")}
        assert {"idx_audit_log_request_id", "idx_audit_log_ts"} <= indexes  # v3, v6 (retention)


def test_migrate_twice_is_a_no_op(tmp_path: Path) -> None:
    first = cli("migrate", data_dir=tmp_path).stdout
    second = cli("migrate", data_dir=tmp_path).stdout
    assert f"applied {', '.join(str(v) for v in range(1, migrations.LATEST + 1))}" in first
    assert f"already at schema version {migrations.LATEST}" in second
