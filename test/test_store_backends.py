"""The store interface, held by both backends: every test runs on the embedded sqlite store and on
a real PostgreSQL (Debian's, a throwaway cluster), through the same `Store` methods the gateway uses."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import psycopg
import pytest

from ovos_realtime_gateway.store import (
    ApiKey,
    AuditEntry,
    ClientSecret,
    Pruner,
    PurgeRefused,
    RetentionRules,
    SessionRecord,
    SqliteStore,
    Store,
    migrations,
    pg_migrations,
)
from ovos_realtime_gateway.store.backends import check_store_url, redact
from ovos_realtime_gateway.store.interface import TABLES
from ovos_realtime_gateway.store.postgres import PostgresStore

from .postgres_server import PostgresServer

NOW = 1_800_000_000


def _key(key_id: str, project_id: str, created_at: int = NOW) -> ApiKey:
    return ApiKey(id=key_id, project_id=project_id, salt="s", hash="h", hint="…abcd", created_at=created_at)


def _session(
    session_id: str, project_id: str, status: str = "pending", at: int = NOW, **extra: object
) -> SessionRecord:
    config = {"model": "gpt-realtime", "instructions": f"be {session_id}", "output_modalities": ["audio"]}
    return SessionRecord(
        id=session_id,
        project_id=project_id,
        type="realtime",
        config=config,
        status=status,
        created_at=at,
        updated_at=at,
        **extra,  # type: ignore[arg-type]  # keyword overrides of a row dataclass, checked at run time
    )


def _secret(secret_id: str, project_id: str, session_id: str, expires_at: int) -> ClientSecret:
    return ClientSecret(
        id=secret_id,
        project_id=project_id,
        key_id=None,
        session_id=session_id,
        salt="s",
        hash="h",
        created_at=expires_at - 600,
        expires_at=expires_at,
    )


async def test_migrations_run_once_and_both_backends_share_their_versions(store: Store) -> None:
    assert await store.schema_version() == migrations.LATEST == pg_migrations.LATEST
    assert await store.migrate() == [], "a second migrate applies nothing"
    assert [(v, n) for v, n, _ in migrations.MIGRATIONS] == [(v, n) for v, n, _ in pg_migrations.MIGRATIONS]
    assert await store.ping()
    for table in TABLES:
        assert await store.count(table) == 0
    with pytest.raises(ValueError, match="no table"):
        await store.count("sqlite_master")


async def test_both_schemas_have_the_same_columns(tmp_path: Path, postgres: PostgresServer) -> None:
    """What `store copy` relies on: every sqlite column exists in PostgreSQL, and no other."""
    lite = SqliteStore(tmp_path)
    await lite.migrate()
    await lite.close()
    url = postgres.create_database()
    pg = PostgresStore(url)
    await pg.migrate()
    await pg.close()
    with sqlite3.connect(tmp_path / "ovos-realtime.db") as db:
        lite_columns = {t: {r[1] for r in db.execute(f"pragma table_info({t})")} for t in TABLES}
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select table_name, column_name from information_schema.columns where table_schema = 'public'"
        ).fetchall()
    pg_columns: dict[str, set[str]] = {}
    for table, column in rows:
        if column != "seq":  # PostgreSQL's insertion order (sqlite has its rowid)
            pg_columns.setdefault(table, set()).add(column)
    assert {t: pg_columns[t] for t in TABLES} == lite_columns


async def test_postgresql_upgrade_from_first_schema_keeps_rows(postgres: PostgresServer) -> None:
    """test_store_migrations' upgrade, on PostgreSQL: a v1 database with rows, migrated to the
    latest schema step by step, keeps them and gains the new columns (empty) and indexes."""
    url = postgres.create_database()
    old = PostgresStore(url)
    try:
        assert await old.migrate(target=1) == [1]
    finally:
        await old.close()
    with psycopg.connect(url) as conn:
        conn.execute("insert into projects (id, name, created_at) values ('proj_old', 'old', 1)")
        conn.execute(
            "insert into api_keys (id, project_id, salt, hash, hint, created_at) "
            "values ('key_0123456789abcdef', 'proj_old', 's', 'h', 'sk…', 1)"
        )
        conn.execute(
            "insert into sessions (id, project_id, type, config, status, created_at, updated_at) "
            "values ('sess_old', 'proj_old', 'realtime', '{}', 'closed', 1, 2)"
        )
    store = PostgresStore(url)
    try:
        assert await store.migrate() == list(range(2, pg_migrations.LATEST + 1))
        key = await store.get_api_key("key_0123456789abcdef")
        assert key is not None and (key.hash, key.expires_at, key.rotated_to) == ("h", None, None)
        session = await store.get_session("sess_old")
        assert session is not None and (session.status, session.max_seconds) == ("closed", None)
    finally:
        await store.close()
    with psycopg.connect(url) as conn:
        found = conn.execute("select indexname from pg_indexes where tablename = 'audit_log'")
        indexes = {row[0] for row in found}
    assert {"idx_audit_log_request_id", "idx_audit_log_ts"} <= indexes  # v3, v6 (retention)


async def test_migrations_from_replicas_starting_together_apply_once(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    replicas = [PostgresStore(url) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(r.migrate() for r in replicas))
        assert sorted(v for versions in applied for v in versions) == [
            v for v, _, _ in pg_migrations.MIGRATIONS
        ]
    finally:
        for replica in replicas:
            await replica.close()


async def test_projects_are_created_once_by_name(store: Store) -> None:
    alpha, created = await store.ensure_project("alpha")
    again, created_again = await store.ensure_project("alpha")
    beta, _ = await store.ensure_project("beta")
    assert created and not created_again and again == alpha
    assert await store.get_project(alpha.id) == alpha
    assert await store.get_project("proj_missing") is None
    assert [p.name for p in await store.list_projects()] == ["alpha", "beta"]
    assert beta.id != alpha.id


async def test_keys_list_in_order_revoke_and_rotate_atomically(store: Store) -> None:
    project, _ = await store.ensure_project("alpha")
    other, _ = await store.ensure_project("beta")
    for key_id in ("key_c", "key_a", "key_b"):  # the same second: listed as inserted
        await store.insert_api_key(_key(key_id, project.id))
    await store.insert_api_key(_key("key_other", other.id))
    assert [k.id for k in await store.list_api_keys(project.id)] == ["key_c", "key_a", "key_b"]
    assert len(await store.list_api_keys()) == 4
    assert await store.get_api_key("key_a") == _key("key_a", project.id)
    assert await store.get_api_key("key_missing") is None

    await store.update_api_key("key_a", revoked_at=NOW)
    assert (await store.get_api_key("key_a")).revoked_at == NOW  # type: ignore[union-attr]  # the key was just created: not None
    await store.rotate_api_key("key_b", _key("key_b2", project.id), old_expires_at=NOW + 60)
    rotated = await store.get_api_key("key_b")
    assert rotated is not None and rotated.rotated_to == "key_b2" and rotated.expires_at == NOW + 60
    with pytest.raises(LookupError):  # rotated already: nothing written
        await store.rotate_api_key("key_b", _key("key_b3", project.id), old_expires_at=NOW + 60)
    assert await store.get_api_key("key_b3") is None
    wanted = ["key_a", "key_b", "key_c", "ek_not_a_key", "key_missing"]
    assert await store.unusable_keys(wanted, NOW) == {"key_a"}
    assert await store.unusable_keys(wanted, NOW + 61) == {"key_a", "key_b"}, "past its grace"
    assert await store.unusable_keys([], NOW) == set()


async def test_secrets_sessions_and_calls(store: Store) -> None:
    timed: list[str] = []
    store.observe_write = lambda operation, seconds: timed.append(operation)
    project, _ = await store.ensure_project("alpha")
    pending = _session("sess_1", project.id, client_secret_id="ek_1", max_seconds=120)
    await store.create_client_secret(_secret("ek_1", project.id, "sess_1", NOW + 600), pending)
    assert await store.get_client_secret("ek_1") == _secret("ek_1", project.id, "sess_1", NOW + 600)
    assert await store.get_session("sess_1") == pending
    with pytest.raises(
        (sqlite3.IntegrityError, psycopg.IntegrityError)
    ):  # the same id twice: refused, and nothing half-written
        await store.create_client_secret(_secret("ek_2", project.id, "sess_1", NOW), pending)
    assert await store.get_client_secret("ek_2") is None

    live = _session("sess_1", project.id, status="active", at=NOW, client_secret_id="ek_1", max_seconds=120)
    await store.save_session(live)
    await store.save_session(_session("sess_2", project.id, status="active"))
    assert await store.get_session("sess_1") == live
    assert [s.id for s in await store.list_sessions(project.id)] == ["sess_1", "sess_2"]

    call = {"id": "rtc_1", "project_id": project.id, "session_id": "sess_2", "transport": "webrtc"}
    await store.save_call({**call, "status": "ringing", "created_at": NOW})
    await store.save_call(
        {
            "id": "rtc_1",
            "project_id": project.id,
            "transport": "webrtc",
            "status": "active",
            "created_at": NOW,
        }
    )
    calls = await store.list_calls(project.id)
    assert calls == [
        {
            **call,
            "status": "active",
            "created_at": NOW,
            "ended_at": None,
            "end_reason": None,
            "replica_id": None,
        }
    ]
    assert await store.list_calls() == calls

    closed = await store.close_orphans(NOW + 5, {"rep_alone"}, "gateway_died")
    assert {(c.kind, c.id) for c in closed} == {
        ("session", "sess_1"),
        ("session", "sess_2"),
        ("call", "rtc_1"),
    }
    assert {(s.status, s.end_reason) for s in await store.list_sessions(project.id)} == {
        ("closed", "gateway_died")
    }
    (ended,) = await store.list_calls()
    assert (ended["status"], ended["ended_at"], ended["end_reason"]) == ("ended", NOW + 5, "gateway_died")
    assert set(timed) == {"session", "call"}, "the operations docs/observability.md lists, on either backend"


async def test_audit_rows_by_request(store: Store) -> None:
    entries = [
        AuditEntry(
            ts=NOW + i / 10, request_id=f"req_{i % 2}", action="keys.create", decision="allowed", status=200
        )
        for i in range(5)
    ]
    await store.write_audit([*entries, AuditEntry(NOW, None, "x", "denied", 403, detail={"b": 1, "a": [2]})])
    await store.write_audit([])
    rows = await store.audit_rows("req_0")
    assert [r["ts"] for r in rows] == [NOW, NOW + 0.2, NOW + 0.4]
    assert {r["request_id"] for r in rows} == {"req_0"} and rows[0]["status"] == 200
    assert len(await store.audit_rows()) == 6
    (denied,) = [r for r in await store.audit_rows() if r["decision"] == "denied"]
    assert denied["detail"] == '{"a": [2], "b": 1}' and set(denied) == set(rows[0])


async def test_retention_deletes_what_is_old_and_keeps_what_is_live(store: Store) -> None:
    """The Pruner (in batches of 2) over either backend: old audit, ended sessions with their
    conversations, old ended calls and expired secrets go; live and recent ones stay."""
    from ovos_realtime_gateway.store import ItemLedger

    project, _ = await store.ensure_project("alpha")
    old, recent = NOW - 10 * 86_400, NOW - 60
    for i in range(3):
        await store.save_session(_session(f"sess_old_closed_{i}", project.id, "closed", old))
        item = {"id": f"item_{i}", "type": "message", "role": "user", "content": []}
        await store.write_items(f"sess_old_closed_{i}", ItemLedger().changes([item]))
    await store.save_session(_session("sess_old_active", project.id, "active", old))
    await store.save_session(_session("sess_recent_closed", project.id, "closed", recent))
    expired = _session("sess_old_pending", project.id, "pending", old, client_secret_id="ek_old")
    await store.create_client_secret(_secret("ek_old", project.id, "sess_old_pending", old), expired)
    waiting = _session("sess_waiting", project.id, "pending", old, client_secret_id="ek_live")
    await store.create_client_secret(_secret("ek_live", project.id, "sess_waiting", NOW + 600), waiting)
    for i, ended_at in enumerate((old, old, recent)):
        await store.save_call(
            {
                "id": f"rtc_{i}",
                "project_id": project.id,
                "transport": "sip",
                "status": "ended",
                "created_at": old,
                "ended_at": ended_at,
            }
        )
    await store.write_audit([AuditEntry(ts, None, "a", "allowed", 200) for ts in (old, old, old, recent)])

    rules = RetentionRules(audit_seconds=86_400, sessions_seconds=86_400, client_secrets_seconds=3600)
    deleted: list[tuple[str, int]] = []
    pruner = Pruner(
        store, rules, interval_s=3600, batch_rows=2, on_deleted=lambda t, n: deleted.append((t, n))
    )
    counts = await pruner.prune(now=NOW)
    assert counts == {
        "audit_log": 3,
        "conversation_items": 3,
        "sessions": 4,
        "calls": 2,
        "client_secrets": 1,
    }, counts
    assert ("audit_log", 2) in deleted, "in batches of batch_rows"
    remaining = {s.id for s in await store.list_sessions(project.id)}
    assert remaining == {"sess_old_active", "sess_recent_closed", "sess_waiting"}
    assert await store.get_client_secret("ek_live") is not None
    assert [c["id"] for c in await store.list_calls()] == ["rtc_2"]
    assert await pruner.prune(now=NOW) == {}, "nothing more to delete"


async def test_purge_refuses_live_sessions_and_deletes_what_hangs_off_the_others(store: Store) -> None:
    from ovos_realtime_gateway.store import ItemLedger

    project, _ = await store.ensure_project("alpha")
    for i, at in enumerate((NOW - 100, NOW - 50, NOW)):
        record = _session(f"sess_{i}", project.id, "pending", at, client_secret_id=f"ek_{i}")
        await store.create_client_secret(_secret(f"ek_{i}", project.id, f"sess_{i}", NOW + 600), record)
        item = {"id": f"item_{i}", "type": "message", "role": "user", "content": []}
        await store.write_items(f"sess_{i}", ItemLedger().changes([item]))
    await store.save_call(
        {
            "id": "rtc_0",
            "project_id": project.id,
            "session_id": "sess_0",
            "transport": "webrtc",
            "status": "ended",
            "created_at": NOW,
        }
    )
    await store.save_session(_session("sess_2", project.id, "active", NOW, client_secret_id="ek_2"))

    with pytest.raises(PurgeRefused, match="live"):
        await store.purge(project_id=project.id)
    assert await store.count("sessions") == 3, "refused: nothing deleted"
    with pytest.raises(PurgeRefused, match="no session"):
        await store.purge(session_id="sess_missing")

    result = await store.purge(project_id=project.id, before=NOW - 10)
    assert (result.sessions, result.client_secrets, result.calls, result.items) == (
        ["sess_0", "sess_1"],
        ["ek_0", "ek_1"],
        ["rtc_0"],
        2,
    )
    assert [s.id for s in await store.list_sessions(project.id)] == ["sess_2"]
    assert await store.list_items("sess_0") == [] and len(await store.list_items("sess_2")) == 1
    (audit,) = [r for r in await store.audit_rows() if r["action"] == "data.purge"]
    assert audit["id"] == result.audit_id and "sess_0" in audit["detail"]
    await store.save_session(_session("sess_2", project.id, "closed", NOW, client_secret_id="ek_2"))
    assert (await store.purge(session_id="sess_2")).sessions == ["sess_2"]
    assert await store.count("sessions") == 0 and await store.count("conversation_items") == 0


def test_store_urls_are_checked_and_never_shown_with_their_password() -> None:
    assert check_store_url("postgresql://u:pw@db:5432/x?sslmode=require")
    for bad, reason in (
        ("mysql://db/x", "scheme 'mysql' is not supported"),
        ("/var/lib/store.db", "scheme 'none' is not supported"),
        ("postgresql://db:99999/x", "not a URL"),
        ("postgresql://db/x?nonsense=1", "not a valid PostgreSQL URL"),
    ):
        with pytest.raises(ValueError, match=reason):
            check_store_url(bad)
    assert redact("postgresql://u:s3cret@db/x?sslmode=require") == "postgresql://u:***@db/x?sslmode=require"
    assert (
        redact("postgresql://u@/x?host=/run/pg&password=s3cret")
        == "postgresql://u@/x?host=/run/pg&password=***"
    )
    assert redact("postgresql://db/x") == "postgresql://db/x"


def test_a_store_url_that_is_wrong_is_refused_at_start_naming_the_setting(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    from .gateway_process import cli

    bad = cli("migrate", "--store-url", "mysql://db/x", data_dir=tmp_path, check=False)
    assert bad.returncode == 2 and "store_url" in bad.stderr and "postgresql://" in bad.stderr, bad.stderr
    missing = postgres.url("no_such_database")
    down = cli("migrate", "--store-url", missing, data_dir=tmp_path, check=False)
    assert down.returncode == 1 and "cannot connect to the store" in down.stderr, down.stderr
    assert "no_such_database" in down.stderr and "Traceback" not in down.stderr
    assert not (tmp_path / "ovos-realtime.db").exists(), "no sqlite store made instead"
    url = postgres.create_database()
    done = cli("migrate", "--store-url", url, data_dir=tmp_path)
    assert f"schema version {migrations.LATEST}" in done.stdout
    nothing = cli("store", "copy", "--to", url, data_dir=tmp_path / "empty", check=False)
    assert nothing.returncode == 1 and "nothing copied: no store at" in nothing.stderr, nothing.stderr
    wrong = cli("store", "copy", "--to", "sqlite:///x.db", data_dir=tmp_path, check=False)
    assert wrong.returncode == 2 and "--to scheme 'sqlite' is not supported" in wrong.stderr, wrong.stderr
