"""Deleting a person's data on request: sessions with their conversations, client secrets and
calls, chosen by session id or by project (and creation date), in one transaction.

A live (`active`) session is refused, not ended: the gateway that serves it is another process,
and its next save would write the conversation again. What was deleted is audited by id only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlite_utils import Database

from ..protocol import ids


class PurgeRefused(Exception):
    """The purge would touch a live session, or names nothing that exists; nothing was deleted."""


@dataclass(frozen=True, slots=True)
class PurgeResult:
    sessions: list[str] = field(default_factory=list)
    client_secrets: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    items: int = 0
    audit_id: str = ""


class Tx(Protocol):
    """One open transaction of either backend, its SQL written with `?` placeholders."""

    lock_rows: str  # appended to the select of the sessions to delete: locks them where needed

    def rows(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]: ...
    def run(self, sql: str, args: Sequence[Any]) -> int: ...


class SqliteTx:
    def __init__(self, db: Database) -> None:
        self._db = db
        self.lock_rows = ""  # BEGIN IMMEDIATE holds the write lock already

    def rows(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._db.execute(sql, list(args)).fetchall()]

    def run(self, sql: str, args: Sequence[Any]) -> int:
        return int(self._db.execute(sql, list(args)).rowcount)


def purge(
    db: Database,
    *,
    session_id: str | None = None,
    project_id: str | None = None,
    before: float | None = None,
) -> PurgeResult:
    """Delete the chosen sessions and what hangs off them, atomically (`BEGIN IMMEDIATE`: no
    session can turn live between the check and the delete)."""
    check_choice(session_id, project_id)
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = purge_in(SqliteTx(db), session_id, project_id, before)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def check_choice(session_id: str | None, project_id: str | None) -> None:
    if (session_id is None) == (project_id is None):
        raise ValueError("name a session or a project")


def purge_in(tx: Tx, session_id: str | None, project_id: str | None, before: float | None) -> PurgeResult:
    """The purge inside the caller's transaction (which rolls back if this raises)."""
    args: list[Any]
    if session_id is not None:
        query = f"select id, project_id, status from sessions where id = ?{tx.lock_rows}"
        rows = tx.rows(query, [session_id])
        if not rows:
            raise PurgeRefused(f"no session {session_id}")
    else:
        where, args = "project_id = ?", [project_id]
        if before is not None:
            where, args = where + " and created_at < ?", [*args, before]
        rows = tx.rows(f"select id, project_id, status from sessions where {where}{tx.lock_rows}", args)
    live = sorted(sid for sid, _, status in rows if status == "active")
    if live:
        raise PurgeRefused(
            f"{len(live)} session(s) are live ({', '.join(live[:5])}): end them (or revoke their key) "
            "and purge again"
        )
    sessions = sorted(sid for sid, _, _ in rows)
    secrets: list[str] = []
    calls: list[str] = []
    items = 0
    for start in range(0, len(sessions), 500):
        chunk = sessions[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for table, found in (("client_secrets", secrets), ("calls", calls)):
            found += [r[0] for r in tx.rows(f"select id from {table} where session_id in ({marks})", chunk)]
        items += tx.run(f"delete from conversation_items where session_id in ({marks})", chunk)
        tx.run(f"delete from client_secrets where session_id in ({marks})", chunk)
        tx.run(f"delete from calls where session_id in ({marks})", chunk)
        tx.run(f"delete from sessions where id in ({marks})", chunk)
    projects = sorted({pid for _, pid, _ in rows} | ({project_id} if project_id else set()))
    audit = ids.audit_id()
    detail = {"sessions": sessions, "client_secrets": sorted(secrets), "calls": sorted(calls), "items": items}
    if before is not None:
        detail["before"] = before
    tx.run(
        "insert into audit_log (id, ts, request_id, project_id, principal, action, resource, decision, "
        "status, detail) values (?, ?, null, ?, 'cli', 'data.purge', ?, 'allowed', 200, ?)",
        [audit, time.time(), projects[0] if len(projects) == 1 else None, session_id, json.dumps(detail)],
    )
    return PurgeResult(sessions, sorted(secrets), sorted(calls), items, audit)
