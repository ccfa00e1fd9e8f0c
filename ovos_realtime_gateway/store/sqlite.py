"""`SqliteStore`: the embedded store, one sqlite file in the data dir (sqlite-utils). Every query
runs on one dedicated thread, never on the loop.

Long because it is one method per `Store` operation, as `postgres.py` is, so the two backends read
side by side."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database
from sqlite_utils.db import NotFoundError

from ..data_dir import private_dir, private_file, tighten_file
from ..protocol import ids
from . import migrations, purge, retention
from .interface import TABLES, StoreUnavailable, audit_row, lost_filter, orphan_filter
from .item_ledger import ItemChanges
from .purge import PurgeResult
from .records import ApiKey, AuditEntry, ClientSecret, ClosedRecord, Project, SessionRecord, StoredPolicy

T = TypeVar("T")
DB_FILENAME = "ovos-realtime.db"
# sqlite's errors that say the file cannot be used now (another writer holds it past busy_timeout,
# a read-only or full disk, a vanished directory), not that a query is wrong
_UNAVAILABLE = ("locked", "readonly", "read-only", "disk i/o", "unable to open", "disk is full")
_UPSERT_ITEM = (
    "insert into conversation_items (session_id, item_id, position, item, updated_at) "
    "values (?, ?, ?, ?, ?) on conflict (session_id, item_id) do update set "
    "position = excluded.position, item = excluded.item, updated_at = excluded.updated_at"
)


def _as(record_type: type[T], row: dict[str, Any]) -> T:
    names = {f.name for f in fields(record_type)}  # type: ignore[arg-type]  # a dataclass type given as a TypeVar bound to Any
    return record_type(**{k: v for k, v in row.items() if k in names})


class SqliteStore:
    """The gateway's persistent state in one sqlite file (WAL mode) inside the data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / DB_FILENAME
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ovos-realtime-store")
        self._db: Database | None = None
        self.observe_write: Callable[[str, float], None] = lambda operation, seconds: None

    @property
    def where(self) -> str:
        return str(self.path)

    # -- plumbing ---------------------------------------------------------------------------

    def _database(self) -> Database:
        if self._db is None:
            private_dir(self.path.parent)
            private_file(self.path)  # sqlite gives its -wal and -shm files the mode of the database
            db = Database(self.path)
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA busy_timeout = 5000")
            db.enable_wal()
            for suffix in ("-wal", "-shm"):  # left by an older version with sqlite's default 0644
                companion = self.path.with_name(self.path.name + suffix)
                if companion.exists():
                    tighten_file(companion)  # never opened: that would drop sqlite's locks on it
            # WAL + NORMAL: never corrupts; a power cut may lose the last commits, a crash loses nothing.
            db.execute("PRAGMA synchronous = NORMAL")
            # deleted rows (retention, purge) are overwritten with zeros, not left in free pages
            db.execute("PRAGMA secure_delete = ON")
            self._db = db
        return self._db

    async def _run(self, fn: Callable[[Database], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(self._database()))
        except sqlite3.OperationalError as exc:
            if not any(word in str(exc).lower() for word in _UNAVAILABLE):
                raise
            raise StoreUnavailable(f"the store {self.path} cannot be used now: {exc}") from None

    async def _write(self, operation: str, fn: Callable[[Database], T]) -> T:
        """`_run` for a write, timed from queued to committed into `observe_write`."""
        start = time.perf_counter()
        try:
            return await self._run(fn)
        finally:
            self.observe_write(operation, time.perf_counter() - start)

    async def close(self) -> None:
        def _close(db: Database) -> None:
            db.close()
            self._db = None

        if self._db is not None:
            await self._run(_close)
        # joining the store's thread waits on a lock: off the loop
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    async def migrate(self, target: int = migrations.LATEST) -> list[int]:
        return await self._run(lambda db: migrations.migrate(db, target))

    async def schema_version(self) -> int:
        return await self._run(migrations.current_version)

    async def ping(self) -> bool:
        return await self._run(lambda db: db.execute("select 1").fetchone() == (1,))

    # -- projects ---------------------------------------------------------------------------

    async def ensure_project(self, name: str) -> tuple[Project, bool]:
        """The project called `name`, created if needed; the flag says whether it was created."""

        def op(db: Database) -> tuple[Project, bool]:
            rows = list(db.table("projects").rows_where("name = ?", [name]))
            if rows:
                return _as(Project, rows[0]), False
            project = Project(id=ids.project_id(), name=name, created_at=int(time.time()))
            db.table("projects").insert(
                {"id": project.id, "name": project.name, "created_at": project.created_at}
            )
            return project, True

        return await self._run(op)

    async def get_project(self, project_id: str) -> Project | None:
        def op(db: Database) -> Project | None:
            try:
                return _as(Project, db.table("projects").get(project_id))
            except NotFoundError:
                return None

        return await self._run(op)

    async def list_projects(self) -> list[Project]:
        return await self._run(
            lambda db: [_as(Project, r) for r in db.table("projects").rows_where(order_by="created_at")]
        )

    # -- API keys ---------------------------------------------------------------------------

    async def insert_api_key(self, key: ApiKey) -> None:
        await self._run(lambda db: db.table("api_keys").insert(_row(key)))

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        def op(db: Database) -> ApiKey | None:
            try:
                return _as(ApiKey, db.table("api_keys").get(key_id))
            except NotFoundError:
                return None

        return await self._run(op)

    async def list_api_keys(self, project_id: str | None = None) -> list[ApiKey]:
        def op(db: Database) -> list[ApiKey]:
            where, args = ("project_id = ?", [project_id]) if project_id else (None, [])
            return [
                _as(ApiKey, r) for r in db.table("api_keys").rows_where(where, args, order_by="created_at")
            ]

        return await self._run(op)

    async def update_api_key(self, key_id: str, **changes: Any) -> None:
        await self._run(lambda db: db.table("api_keys").update(key_id, changes))

    async def rotate_api_key(self, old_id: str, new_key: ApiKey, old_expires_at: int) -> None:
        """Insert the successor and start the old key's grace period, atomically; LookupError
        (nothing written) when the old key was rotated or revoked meanwhile (by another process)."""

        def op(db: Database) -> None:
            with db.conn:
                changed = db.execute(
                    "update api_keys set expires_at = ?, rotated_to = ? "
                    "where id = ? and rotated_to is null and revoked_at is null",
                    [old_expires_at, new_key.id, old_id],
                ).rowcount
                if changed != 1:
                    raise LookupError(f"key '{old_id}' was rotated or revoked meanwhile")
                db.table("api_keys").insert(_row(new_key))

        await self._run(op)

    async def unusable_keys(self, key_ids: Iterable[str], now: float) -> set[str]:
        """Those of `key_ids` that are API keys no longer usable: revoked, or past their grace."""
        wanted = sorted({k for k in key_ids if k.startswith("key_")})

        def op(db: Database) -> set[str]:
            marks = ",".join("?" * len(wanted))
            rows = db.execute(
                f"select id from api_keys where id in ({marks}) "
                "and (revoked_at is not null or (expires_at is not null and expires_at <= ?))",
                [*wanted, now],
            ).fetchall()
            return {row[0] for row in rows}

        return await self._run(op) if wanted else set()

    # -- client secrets and sessions ----------------------------------------------------------

    async def create_client_secret(self, secret: ClientSecret, session: SessionRecord) -> None:
        """Store a minted `ek_` secret and the pending session it carries, atomically."""

        def op(db: Database) -> None:
            with db.conn:
                db.table("sessions").insert(session.to_row())
                db.table("client_secrets").insert(_row(secret))

        await self._run(op)

    async def get_client_secret(self, secret_id: str) -> ClientSecret | None:
        def op(db: Database) -> ClientSecret | None:
            try:
                return _as(ClientSecret, db.table("client_secrets").get(secret_id))
            except NotFoundError:
                return None

        return await self._run(op)

    async def save_session(self, session: SessionRecord) -> None:
        await self._write("session", lambda db: db.table("sessions").upsert(session.to_row(), pk="id"))

    async def save_call(self, call: dict[str, Any]) -> None:
        """Insert or update a call's row (id, project_id, session_id, transport, status,
        created_at, ended_at, end_reason)."""
        await self._write("call", lambda db: db.table("calls").upsert(call, pk="id"))

    async def list_calls(self, project_id: str | None = None) -> list[dict[str, Any]]:
        def op(db: Database) -> list[dict[str, Any]]:
            where, args = ("project_id = ?", [project_id]) if project_id else (None, [])
            return list(db.table("calls").rows_where(where, args, order_by="created_at"))

        return await self._run(op)

    async def close_orphans(
        self, now: int, live: Collection[str], reason: str, unheld: bool = True
    ) -> list[ClosedRecord]:
        """Close the `active` sessions and the calls not ended that no live replica holds: held by
        a replica not in `live` (and, with `unheld`, by none recorded), with `end_reason` `reason`.
        At start, a gateway alone (`live` only itself) closes every one: its previous run died."""
        where, args = orphan_filter(live, unheld)

        def op(db: Database) -> list[ClosedRecord]:
            with db.conn:
                sessions = db.execute(
                    f"select id, project_id, replica_id from sessions where status = 'active' and {where}",
                    args,
                ).fetchall()
                calls = db.execute(
                    f"select id, project_id, replica_id from calls where status != 'ended' and {where}", args
                ).fetchall()
                db.execute(
                    f"update sessions set status = 'closed', updated_at = ?, end_reason = ? "
                    f"where status = 'active' and {where}",
                    [now, reason, *args],
                )
                db.execute(
                    f"update calls set status = 'ended', ended_at = ?, end_reason = ? "
                    f"where status != 'ended' and {where}",
                    [now, reason, *args],
                )
            return [ClosedRecord("session", row[0], row[1], row[2], reason) for row in sessions] + [
                ClosedRecord("call", row[0], row[1], row[2], reason) for row in calls
            ]

        return await self._run(op)

    async def reopen_lost(
        self, now: int, replica_id: str, session_ids: Collection[str], call_ids: Collection[str]
    ) -> int:
        """Mark live again what this replica holds and another closed as lost while it could not
        renew its lease (paused, cut off from Redis); returns how many rows."""
        sessions, session_args = lost_filter(replica_id, session_ids)
        calls, call_args = lost_filter(replica_id, call_ids)

        def op(db: Database) -> int:
            with db.conn:
                opened = db.execute(
                    f"update sessions set status = 'active', updated_at = ?, end_reason = null "
                    f"where {sessions}",
                    [now, *session_args],
                ).rowcount
                opened += db.execute(
                    f"update calls set status = 'active', ended_at = null, end_reason = null where {calls}",
                    call_args,
                ).rowcount
            return opened

        return await self._run(op)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        def op(db: Database) -> SessionRecord | None:
            try:
                return SessionRecord.from_row(db.table("sessions").get(session_id))
            except NotFoundError:
                return None

        return await self._run(op)

    async def list_sessions(self, project_id: str) -> list[SessionRecord]:
        return await self._run(
            lambda db: [
                SessionRecord.from_row(r)
                for r in db.table("sessions").rows_where(
                    "project_id = ?", [project_id], order_by="created_at"
                )
            ]
        )

    async def write_items(self, session_id: str, changes: ItemChanges) -> None:
        """Apply what changed in a session's conversation (see ItemLedger), in one transaction."""
        now = int(time.time())
        rows = [(session_id, r.item_id, r.position, r.item, now) for r in changes.rows]

        def op(db: Database) -> None:
            with db.conn:
                if changes.replace_all:
                    db.execute("delete from conversation_items where session_id = ?", [session_id])
                for start in range(0, len(changes.removed), 500):
                    chunk = changes.removed[start : start + 500]
                    db.execute(
                        "delete from conversation_items where session_id = ? and item_id in "
                        f"({', '.join('?' * len(chunk))})",
                        [session_id, *chunk],
                    )
                db.conn.executemany(_UPSERT_ITEM, rows)

        if changes:
            await self._write("items", op)

    async def list_items(self, session_id: str) -> list[dict[str, Any]]:
        def op(db: Database) -> list[dict[str, Any]]:
            rows = db.table("conversation_items").rows_where(
                "session_id = ?", [session_id], order_by="position"
            )
            return [json.loads(r["item"]) for r in rows]

        return await self._run(op)

    # -- audit --------------------------------------------------------------------------------

    async def write_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append audit rows in one transaction (the audit writer batches them)."""
        rows = [audit_row(e, ids.audit_id()) for e in entries]

        def op(db: Database) -> None:
            with db.conn:
                db.table("audit_log").insert_all(rows)

        if rows:
            await self._write("audit", op)

    async def audit_rows(self, request_id: str | None = None) -> list[dict[str, Any]]:
        def op(db: Database) -> list[dict[str, Any]]:
            where, args = ("request_id = ?", [request_id]) if request_id else (None, [])
            return list(db.table("audit_log").rows_where(where, args, order_by="ts"))

        return await self._run(op)

    # -- retention ----------------------------------------------------------------------------

    async def delete_batch(self, table: str, cutoff: float, now: float, limit: int) -> int:
        """Delete up to `limit` rows of `table` older than `cutoff` that retention no longer keeps,
        in one short transaction; how many went."""
        sql = retention.DELETE_BATCH[table]

        def op(db: Database) -> int:
            with db.conn:
                cursor = db.execute(sql, {"cutoff": cutoff, "now": now, "limit": limit})
                return int(cursor.rowcount)

        return await self._write("retention", op)

    async def checkpoint(self) -> bool:
        """Copy the WAL into the database and empty it, so rows deleted since are gone from both
        files; False when a reader kept it from completing (the next call finishes it)."""
        row = await self._run(lambda db: db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
        return row is not None and row[0] == 0

    async def purge(
        self, *, session_id: str | None = None, project_id: str | None = None, before: float | None = None
    ) -> PurgeResult:
        """Delete sessions and what they left (see purge.py), then empty the WAL."""
        result = await self._run(
            lambda db: purge.purge(db, session_id=session_id, project_id=project_id, before=before)
        )
        await self.checkpoint()
        return result

    # -- the policy applied to every replica ------------------------------------------------

    async def save_policy(self, policy: str | None, sha256: str | None, applied_at: int) -> int:
        """Store the policy every gateway on this store decides with (None: their own
        `policy_file`); its version, one above the newest (`BEGIN IMMEDIATE`: two at once differ)."""

        def op(db: Database) -> int:
            conn = db.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("select coalesce(max(version), 0) + 1 from policies").fetchone()
                version = int(row[0])
                conn.execute(
                    "insert into policies (version, policy, sha256, applied_at) values (?, ?, ?, ?)",
                    [version, policy, sha256, applied_at],
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return version

        return await self._run(op)

    async def latest_policy(self, after: int) -> StoredPolicy | None:
        def op(db: Database) -> StoredPolicy | None:
            row = db.execute(
                "select version, policy, sha256, applied_at from policies where version > ? "
                "order by version desc limit 1",
                [after],
            ).fetchone()
            return StoredPolicy(*row) if row else None

        return await self._run(op)

    async def count(self, table: str) -> int:
        if table not in TABLES:
            raise ValueError(f"no table {table!r}")
        return await self._run(lambda db: db[table].count)


def _row(record: Any) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in fields(record)}
