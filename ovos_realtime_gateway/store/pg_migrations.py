"""PostgreSQL's schema migrations: the same versions, names and columns as the sqlite ones
(`migrations.py`), in PostgreSQL's DDL, recorded in the same `schema_migrations` table.

Rules as there: migrations only add, each keeps every row. Replicas may start together: each
migration runs in its own transaction under an advisory lock, and re-checks the version inside.
Tables read in insertion order also get `seq` (an identity column), as sqlite's rowid gives it.
"""

from __future__ import annotations

import time

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from . import migrations

_LOCK = 0x0F05_2E41  # pg_advisory_xact_lock key: "ovos-realtime migrations"

_V1 = """
create table projects (
  id text primary key, name text not null, created_at bigint not null,
  seq bigint generated always as identity);
create unique index idx_projects_name on projects (name);
create table api_keys (
  id text primary key, project_id text not null references projects (id), salt text not null,
  hash text not null, hint text, created_at bigint not null, revoked_at bigint,
  seq bigint generated always as identity);
create table client_secrets (
  id text primary key, project_id text not null references projects (id), key_id text,
  session_id text, salt text not null, hash text not null, created_at bigint not null,
  expires_at bigint not null, seq bigint generated always as identity);
create table sessions (
  id text primary key, project_id text not null references projects (id), client_secret_id text,
  type text not null, model text, output_modalities text, audio text, instructions text, tools text,
  tool_choice text, config text not null, status text not null, created_at bigint not null,
  updated_at bigint not null, expires_at bigint, seq bigint generated always as identity);
create table calls (
  id text primary key, project_id text not null references projects (id), session_id text,
  transport text not null, status text not null, created_at bigint not null, ended_at bigint,
  seq bigint generated always as identity);
create table audit_log (
  id text primary key, ts double precision, request_id text, project_id text, principal text,
  action text, resource text, decision text, status bigint, detail text,
  seq bigint generated always as identity);
"""

_V2 = """
alter table api_keys add column expires_at bigint, add column rotated_to text,
  add column last_used_at bigint;
"""

_V3 = """
create index if not exists idx_audit_log_request_id on audit_log (request_id);
create index if not exists idx_audit_log_project_id_ts on audit_log (project_id, ts);
create index if not exists idx_sessions_project_id on sessions (project_id);
create index if not exists idx_client_secrets_project_id on client_secrets (project_id);
create index if not exists idx_calls_project_id on calls (project_id);
"""

_V4 = """
create table conversation_items (
  session_id text not null references sessions (id), item_id text not null,
  position bigint not null, item text not null, updated_at bigint not null,
  primary key (session_id, item_id));
create index if not exists idx_conversation_items_session_id_position
  on conversation_items (session_id, position);
"""

_V5 = "alter table sessions add column max_seconds bigint;"

_V6 = """
create index if not exists idx_audit_log_ts on audit_log (ts);
create index if not exists idx_sessions_status_updated_at on sessions (status, updated_at);
create index if not exists idx_client_secrets_expires_at on client_secrets (expires_at);
"""

_V7 = """
alter table calls add column end_reason text;
create index if not exists idx_calls_status_ended_at on calls (status, ended_at);
"""

_V8 = """
create table policies (
  version bigint primary key, policy text, sha256 text, applied_at bigint not null);
"""

_V9 = """
alter table sessions add column replica_id text, add column end_reason text;
alter table calls add column replica_id text;
"""

MIGRATIONS: list[tuple[int, str, str]] = [
    (version, name, ddl)
    for (version, name, _), ddl in zip(
        migrations.MIGRATIONS, (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9), strict=True
    )
]
LATEST = MIGRATIONS[-1][0]

_CREATE_LOG = (
    "create table if not exists schema_migrations (version bigint primary key, name text, applied_at bigint)"
)


async def current_version(conn: AsyncConnection[DictRow]) -> int:
    cursor = await conn.execute("select to_regclass('schema_migrations') is not null as found")
    exists = await cursor.fetchone()
    if not exists or not exists["found"]:
        return 0
    cursor = await conn.execute("select max(version) as version from schema_migrations")
    row = await cursor.fetchone()
    return int(row["version"] or 0) if row else 0


async def migrate(conn: AsyncConnection[DictRow], target: int = LATEST) -> list[int]:
    """Apply pending migrations up to `target`, each in its own transaction; those applied here."""
    applied: list[int] = []
    for version, name, ddl in MIGRATIONS:
        if version > target:
            break
        async with conn.transaction():
            await conn.execute("select pg_advisory_xact_lock(%s)", [_LOCK])
            await conn.execute(_CREATE_LOG)
            if version <= await current_version(conn):
                continue
            await conn.execute(ddl)
            await conn.execute(
                "insert into schema_migrations (version, name, applied_at) values (%s, %s, %s)",
                [version, name, int(time.time())],
            )
        applied.append(version)
    return applied
