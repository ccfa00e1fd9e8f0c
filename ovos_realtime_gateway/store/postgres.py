"""`PostgresStore`: the store in PostgreSQL, shared by gateway replicas, through an async
connection pool (psycopg 3). Same rows, same answers as `SqliteStore`.

Long because it is one method per `Store` operation, each beside its SQL, in the order of
`sqlite.py`, so the two backends read side by side."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import fields
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow, dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..protocol import ids
from . import pg_migrations
from .interface import TABLES, StoreUnavailable, audit_row, lost_filter, orphan_filter
from .item_ledger import ItemChanges
from .purge import PurgeResult, check_choice, purge_in
from .records import ApiKey, AuditEntry, ClientSecret, ClosedRecord, Project, SessionRecord, StoredPolicy

T = TypeVar("T")
Conn = AsyncConnection[DictRow]
# While PostgreSQL is down a request waits this long for a connection, then is told the store is
# unreachable (503); never the pool's default 30 s. A connection attempt gives up after as long.
WAIT_FOR_CONNECTION_S = 5.0
Batch = tuple[str, list[str], list[tuple[Any, ...]]]  # table, its columns, rows of them

_ENDED = (
    "(s.status = 'closed' or (s.status = 'pending' and not exists (select 1 from client_secrets c "
    "where c.id = s.client_secret_id and c.expires_at > %(now)s)))"
)
# retention.DELETE_BATCH in PostgreSQL: rows chosen by primary key (there is no rowid)
DELETE_BATCH = {
    "audit_log": (
        "delete from audit_log where id in (select id from audit_log where ts < %(cutoff)s limit %(limit)s)"
    ),
    "conversation_items": (
        "delete from conversation_items where (session_id, item_id) in (select i.session_id, i.item_id "
        "from conversation_items i join sessions s on s.id = i.session_id "
        f"where {_ENDED} and s.updated_at < %(cutoff)s limit %(limit)s)"
    ),
    "sessions": (
        "delete from sessions where id in (select s.id from sessions s where "
        f"{_ENDED} and s.updated_at < %(cutoff)s and not exists "
        "(select 1 from conversation_items i where i.session_id = s.id) limit %(limit)s)"
    ),
    "calls": (
        "delete from calls where id in (select id from calls "
        "where status = 'ended' and ended_at < %(cutoff)s limit %(limit)s)"
    ),
    "client_secrets": (
        "delete from client_secrets where id in "
        "(select id from client_secrets where expires_at < %(cutoff)s limit %(limit)s)"
    ),
}
_UPSERT_ITEM = (
    "insert into conversation_items (session_id, item_id, position, item, updated_at) "
    "values (%s, %s, %s, %s, %s) on conflict (session_id, item_id) do update set "
    "position = excluded.position, item = excluded.item, updated_at = excluded.updated_at"
)
_API_KEY_CHANGES = {"revoked_at", "expires_at", "rotated_to", "last_used_at", "hint"}
_CALL_COLUMNS = {
    "id",
    "project_id",
    "session_id",
    "transport",
    "status",
    "created_at",
    "ended_at",
    "end_reason",
    "replica_id",
}


class PostgresStore:
    """The gateway's persistent state in a PostgreSQL database, `conninfo` a libpq URL or string;
    `password` is read when a connection is opened (a secret reference's current value)."""

    def __init__(
        self,
        conninfo: str,
        password: Callable[[], str | None] = lambda: None,
        where: str = "postgresql",
        min_size: int = 1,
        max_size: int = 10,
    ) -> None:
        self._conninfo = conninfo
        self._password = password
        self._where = where
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._sizes = (min_size, max_size)
        self._opening = asyncio.Lock()
        self._item_order = _SessionQueues()
        self.observe_write: Callable[[str, float], None] = lambda operation, seconds: None

    @property
    def where(self) -> str:
        return self._where

    # -- plumbing ---------------------------------------------------------------------------

    def _kwargs(self) -> dict[str, Any]:
        password = self._password()
        options: dict[str, Any] = {
            "row_factory": dict_row,
            "application_name": "ovos-realtime",
            "connect_timeout": int(WAIT_FOR_CONNECTION_S),
        }
        return options | ({"password": password} if password else {})

    async def _connect_pool(self) -> AsyncConnectionPool[Conn]:
        async with self._opening:
            if self._pool is None:
                try:  # one connection first: its error says why (the pool would only time out)
                    probe = await AsyncConnection.connect(self._conninfo, **self._kwargs())
                except psycopg.OperationalError as exc:
                    raise StoreUnavailable(
                        f"cannot connect to the store {self._where}: {_reason(exc)}"
                    ) from None
                await probe.close()
                pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
                    self._conninfo,
                    min_size=self._sizes[0],
                    max_size=self._sizes[1],
                    kwargs=self._kwargs,  # called per connection: a rotated password is used
                    open=False,
                    name="ovos-realtime-store",
                    timeout=WAIT_FOR_CONNECTION_S,
                    # a connection PostgreSQL dropped (a restart) is found out and replaced before use
                    check=AsyncConnectionPool.check_connection,
                )
                await pool.open(wait=True, timeout=30)
                self._pool = pool
            return self._pool

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Conn]:
        """A pooled connection; StoreUnavailable when PostgreSQL cannot be reached (the pool keeps
        trying to reconnect in the background, so the next call works once it is back)."""
        pool = self._pool or await self._connect_pool()
        try:
            async with pool.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise StoreUnavailable(f"the store {self._where} is unreachable: {_reason(exc)}") from None

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        """A pooled connection inside one transaction (committed when the block ends)."""
        async with self._conn() as conn, conn.transaction():
            yield conn

    async def _rows(self, query: Any, args: Sequence[Any] | dict[str, Any] = ()) -> list[DictRow]:
        async with self._tx() as conn:
            cursor = await conn.execute(query, args)
            return await cursor.fetchall()

    async def _execute(self, query: Any, args: Sequence[Any] | dict[str, Any] = ()) -> int:
        async with self._tx() as conn:
            cursor = await conn.execute(query, args)
            return cursor.rowcount

    async def _write(self, operation: str, query: Any, args: Sequence[Any] | dict[str, Any] = ()) -> int:
        """`_execute` for the writes sqlite's store times too, timed into `observe_write`."""
        start = time.perf_counter()
        try:
            return await self._execute(query, args)
        finally:
            self.observe_write(operation, time.perf_counter() - start)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def migrate(self, target: int = pg_migrations.LATEST) -> list[int]:
        async with self._conn() as conn:
            return await pg_migrations.migrate(conn, target)

    async def schema_version(self) -> int:
        async with self._conn() as conn:
            return await pg_migrations.current_version(conn)

    async def ping(self) -> bool:
        rows = await self._rows("select 1 as one")
        return bool(rows) and rows[0]["one"] == 1

    # -- projects ---------------------------------------------------------------------------

    async def ensure_project(self, name: str) -> tuple[Project, bool]:
        """The project called `name`, created if needed; the flag says whether it was created."""
        project = Project(id=ids.project_id(), name=name, created_at=int(time.time()))
        async with self._tx() as conn:
            cursor = await conn.execute(
                "insert into projects (id, name, created_at) values (%s, %s, %s) "
                "on conflict (name) do nothing returning id",
                [project.id, project.name, project.created_at],
            )
            if await cursor.fetchone() is not None:
                return project, True
            cursor = await conn.execute("select id, name, created_at from projects where name = %s", [name])
            row = await cursor.fetchone()
        assert row is not None
        return _as(Project, row), False

    async def get_project(self, project_id: str) -> Project | None:
        rows = await self._rows("select * from projects where id = %s", [project_id])
        return _as(Project, rows[0]) if rows else None

    async def list_projects(self) -> list[Project]:
        return [_as(Project, r) for r in await self._rows("select * from projects order by created_at, seq")]

    # -- API keys ---------------------------------------------------------------------------

    async def insert_api_key(self, key: ApiKey) -> None:
        await self._execute(*_insert("api_keys", _row(key)))

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        rows = await self._rows("select * from api_keys where id = %s", [key_id])
        return _as(ApiKey, rows[0]) if rows else None

    async def list_api_keys(self, project_id: str | None = None) -> list[ApiKey]:
        if project_id:
            rows = await self._rows(
                "select * from api_keys where project_id = %s order by created_at, seq", [project_id]
            )
        else:
            rows = await self._rows("select * from api_keys order by created_at, seq")
        return [_as(ApiKey, r) for r in rows]

    async def update_api_key(self, key_id: str, **changes: Any) -> None:
        unknown = set(changes) - _API_KEY_CHANGES
        if unknown:
            raise ValueError(f"api_keys has no changeable column {sorted(unknown)}")
        if not changes:
            return
        sets = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder()) for k in changes
        )
        query = sql.SQL("update api_keys set {} where id = {}").format(sets, sql.Placeholder())
        await self._execute(query, [*changes.values(), key_id])

    async def rotate_api_key(self, old_id: str, new_key: ApiKey, old_expires_at: int) -> None:
        """Insert the successor and start the old key's grace period, atomically; LookupError
        (nothing written) when the old key was rotated or revoked meanwhile (by another process)."""
        async with self._tx() as conn:
            cursor = await conn.execute(
                "update api_keys set expires_at = %s, rotated_to = %s "
                "where id = %s and rotated_to is null and revoked_at is null",
                [old_expires_at, new_key.id, old_id],
            )
            if cursor.rowcount != 1:
                raise LookupError(f"key '{old_id}' was rotated or revoked meanwhile")
            await conn.execute(*_insert("api_keys", _row(new_key)))

    async def unusable_keys(self, key_ids: Iterable[str], now: float) -> set[str]:
        """Those of `key_ids` that are API keys no longer usable: revoked, or past their grace."""
        wanted = sorted({k for k in key_ids if k.startswith("key_")})
        if not wanted:
            return set()
        rows = await self._rows(
            "select id from api_keys where id = any(%s) "
            "and (revoked_at is not null or (expires_at is not null and expires_at <= %s))",
            [wanted, now],
        )
        return {row["id"] for row in rows}

    # -- client secrets and sessions ----------------------------------------------------------

    async def create_client_secret(self, secret: ClientSecret, session: SessionRecord) -> None:
        """Store a minted `ek_` secret and the pending session it carries, atomically."""
        async with self._tx() as conn:
            await conn.execute(*_insert("sessions", session.to_row()))
            await conn.execute(*_insert("client_secrets", _row(secret)))

    async def get_client_secret(self, secret_id: str) -> ClientSecret | None:
        rows = await self._rows("select * from client_secrets where id = %s", [secret_id])
        return _as(ClientSecret, rows[0]) if rows else None

    async def save_session(self, session: SessionRecord) -> None:
        await self._write("session", *_upsert("sessions", session.to_row(), ("id",)))

    async def save_call(self, call: dict[str, Any]) -> None:
        """Insert or update a call's row (id, project_id, session_id, transport, status,
        created_at, ended_at, end_reason)."""
        unknown = set(call) - _CALL_COLUMNS
        if unknown:
            raise ValueError(f"calls has no column {sorted(unknown)}")
        await self._write("call", *_upsert("calls", call, ("id",)))

    async def list_calls(self, project_id: str | None = None) -> list[dict[str, Any]]:
        if project_id:
            rows = await self._rows(
                "select * from calls where project_id = %s order by created_at, seq", [project_id]
            )
        else:
            rows = await self._rows("select * from calls order by created_at, seq")
        return [_plain(r) for r in rows]

    async def close_orphans(
        self, now: int, live: Collection[str], reason: str, unheld: bool = True
    ) -> list[ClosedRecord]:
        """Close the `active` sessions and the calls not ended that no live replica holds: held by
        a replica not in `live` (and, with `unheld`, by none recorded), with `end_reason` `reason`.
        Replicas share these rows: one replica's live records are never closed by another."""
        where, args = orphan_filter(live, unheld)
        where = _pg(where)
        async with self._tx() as conn:
            sessions = await conn.execute(
                f"update sessions set status = 'closed', updated_at = %s, end_reason = %s "
                f"where status = 'active' and {where} returning id, project_id, replica_id",
                [now, reason, *args],
            )
            closed = [
                ClosedRecord("session", r["id"], r["project_id"], r["replica_id"], reason)
                for r in await sessions.fetchall()
            ]
            calls = await conn.execute(
                f"update calls set status = 'ended', ended_at = %s, end_reason = %s "
                f"where status != 'ended' and {where} returning id, project_id, replica_id",
                [now, reason, *args],
            )
            closed += [
                ClosedRecord("call", r["id"], r["project_id"], r["replica_id"], reason)
                for r in await calls.fetchall()
            ]
        return closed

    async def reopen_lost(
        self, now: int, replica_id: str, session_ids: Collection[str], call_ids: Collection[str]
    ) -> int:
        """Mark live again what this replica holds and another closed as lost while it could not
        renew its lease (paused, cut off from Redis); returns how many rows."""
        sessions, session_args = lost_filter(replica_id, session_ids)
        calls, call_args = lost_filter(replica_id, call_ids)
        async with self._tx() as conn:
            opened = await conn.execute(
                f"update sessions set status = 'active', updated_at = %s, end_reason = null "
                f"where {_pg(sessions)}",
                [now, *session_args],
            )
            count = opened.rowcount
            opened = await conn.execute(
                f"update calls set status = 'active', ended_at = null, end_reason = null where {_pg(calls)}",
                call_args,
            )
            count += opened.rowcount
        return count

    async def get_session(self, session_id: str) -> SessionRecord | None:
        rows = await self._rows("select * from sessions where id = %s", [session_id])
        return SessionRecord.from_row(rows[0]) if rows else None

    async def list_sessions(self, project_id: str) -> list[SessionRecord]:
        rows = await self._rows(
            "select * from sessions where project_id = %s order by created_at, seq", [project_id]
        )
        return [SessionRecord.from_row(r) for r in rows]

    async def write_items(self, session_id: str, changes: ItemChanges) -> None:
        """Apply what changed in a session's conversation (see ItemLedger), in one transaction.
        One session's saves are written in the order they were asked for (a lock per session,
        taken before the first await: asyncio's locks are fair)."""
        if not changes:
            return
        now = int(time.time())
        rows = [(session_id, r.item_id, r.position, r.item, now) for r in changes.rows]
        start = time.perf_counter()
        try:
            async with self._item_order.turn(session_id), self._tx() as conn:
                if changes.replace_all:
                    await conn.execute("delete from conversation_items where session_id = %s", [session_id])
                if changes.removed:
                    await conn.execute(
                        "delete from conversation_items where session_id = %s and item_id = any(%s)",
                        [session_id, list(changes.removed)],
                    )
                if rows:
                    async with conn.cursor() as cursor:
                        await cursor.executemany(_UPSERT_ITEM, rows)
        finally:
            self.observe_write("items", time.perf_counter() - start)

    async def list_items(self, session_id: str) -> list[dict[str, Any]]:
        rows = await self._rows(
            "select item from conversation_items where session_id = %s order by position", [session_id]
        )
        return [json.loads(r["item"]) for r in rows]

    # -- audit --------------------------------------------------------------------------------

    async def write_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append audit rows in one transaction (the audit writer batches them)."""
        if not entries:
            return
        rows = [audit_row(e, ids.audit_id()) for e in entries]
        query, _ = _insert("audit_log", rows[0])
        start = time.perf_counter()
        try:
            async with self._tx() as conn, conn.cursor() as cursor:
                await cursor.executemany(query, [list(r.values()) for r in rows])
        finally:
            self.observe_write("audit", time.perf_counter() - start)

    async def audit_rows(self, request_id: str | None = None) -> list[dict[str, Any]]:
        if request_id:
            rows = await self._rows(
                "select * from audit_log where request_id = %s order by ts, seq", [request_id]
            )
        else:
            rows = await self._rows("select * from audit_log order by ts, seq")
        return [_plain(r) for r in rows]

    # -- retention ----------------------------------------------------------------------------

    async def delete_batch(self, table: str, cutoff: float, now: float, limit: int) -> int:
        """Delete up to `limit` rows of `table` older than `cutoff` that retention no longer keeps,
        in one short transaction; how many went."""
        query = DELETE_BATCH[table]
        return await self._write("retention", query, {"cutoff": cutoff, "now": now, "limit": limit})

    async def checkpoint(self) -> bool:
        """Nothing to do: PostgreSQL recycles its WAL itself (sqlite's store empties its -wal)."""
        return True

    async def purge(
        self, *, session_id: str | None = None, project_id: str | None = None, before: float | None = None
    ) -> PurgeResult:
        """Delete sessions and what they left (see purge.py), in one transaction that locks the
        chosen sessions' rows first (none can turn live between the check and the delete)."""
        check_choice(session_id, project_id)
        kwargs = self._kwargs() | {"row_factory": tuple_row}

        def run() -> PurgeResult:  # on its own connection in a worker thread: purge_in is synchronous
            with psycopg.connect(self._conninfo, **kwargs) as conn, conn.transaction():
                return purge_in(_PgTx(conn.cursor()), session_id, project_id, before)

        return await asyncio.to_thread(run)

    # -- the policy applied to every replica ------------------------------------------------

    async def save_policy(self, policy: str | None, sha256: str | None, applied_at: int) -> int:
        """Store the policy every replica decides with (None: their own `policy_file`); its
        version, one above the newest (under a lock: two applied at once get two versions)."""
        async with self._tx() as conn:
            await conn.execute("lock table policies in share row exclusive mode")
            cursor = await conn.execute(
                "insert into policies (version, policy, sha256, applied_at) "
                "select coalesce(max(version), 0) + 1, %s, %s, %s from policies returning version",
                [policy, sha256, applied_at],
            )
            row = await cursor.fetchone()
        assert row is not None
        return int(row["version"])

    async def latest_policy(self, after: int) -> StoredPolicy | None:
        rows = await self._rows(
            "select version, policy, sha256, applied_at from policies where version > %s "
            "order by version desc limit 1",
            [after],
        )
        return _as(StoredPolicy, rows[0]) if rows else None

    async def load_rows(
        self, batches: AsyncIterator[Batch], progress: Callable[[str, int], None] = lambda t, n: None
    ) -> dict[str, int]:
        """Insert every batch in one transaction (`store copy`); rows per table, counted back."""
        counts: dict[str, int] = dict.fromkeys(TABLES, 0)
        async with self._tx() as conn:
            async for table, columns, rows in batches:
                query, _ = _insert(table, dict.fromkeys(columns))
                async with conn.cursor() as cursor:
                    await cursor.executemany(query, rows)
                counts[table] += len(rows)
                progress(table, counts[table])
            for table, expected in counts.items():
                query = sql.SQL("select count(*) as n from {}").format(sql.Identifier(table))
                row = await (await conn.execute(query)).fetchone()
                if row is None or row["n"] != expected:
                    raise RuntimeError(f"copied {expected} {table} but the target holds {row}")
        return counts

    async def count(self, table: str) -> int:
        if table not in TABLES:
            raise ValueError(f"no table {table!r}")
        rows = await self._rows(sql.SQL("select count(*) as n from {}").format(sql.Identifier(table)))
        return int(rows[0]["n"])


class _SessionQueues:
    """One fair lock per session, kept while anyone holds or waits for it (then dropped)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def turn(self, session_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(session_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[session_id]


class _PgTx:
    """purge.Tx over a synchronous psycopg cursor; `?` placeholders become `%s`."""

    lock_rows = " for update"

    def __init__(self, cursor: psycopg.Cursor[tuple[Any, ...]]) -> None:
        self._cursor = cursor

    def rows(self, sql_text: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._cursor.execute(_pg(sql_text), list(args)).fetchall()

    def run(self, sql_text: str, args: Sequence[Any]) -> int:
        return self._cursor.execute(_pg(sql_text), list(args)).rowcount


def _reason(exc: Exception) -> str:
    """The first line of a connection error (libpq's reason), or its type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _pg(sql_text: str) -> Any:
    return sql_text.replace("?", "%s")


def _as(record_type: type[T], row: dict[str, Any]) -> T:
    names = {f.name for f in fields(record_type)}  # type: ignore[arg-type]  # a dataclass type given as a TypeVar bound to Any
    return record_type(**{k: v for k, v in row.items() if k in names})


def _row(record: Any) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in fields(record)}


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row as sqlite gives it: without PostgreSQL's `seq` ordering column."""
    return {k: v for k, v in row.items() if k != "seq"}


def _insert(table: str, row: dict[str, Any]) -> tuple[sql.Composed, list[Any]]:
    query = sql.SQL("insert into {} ({}) values ({})").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join(sql.Placeholder() * len(row)),
    )
    return query, list(row.values())


def _upsert(table: str, row: dict[str, Any], key: tuple[str, ...]) -> tuple[sql.Composed, list[Any]]:
    """Insert `row`, or update the columns it has when its key exists (sqlite-utils' upsert)."""
    insert, args = _insert(table, row)
    changed = [c for c in row if c not in key]
    updates = sql.SQL(", ").join(sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in changed)
    conflict = sql.SQL(", ").join(map(sql.Identifier, key))
    if not changed:
        return sql.SQL("{} on conflict ({}) do nothing").format(insert, conflict), args
    return sql.SQL("{} on conflict ({}) do update set {}").format(insert, conflict, updates), args
