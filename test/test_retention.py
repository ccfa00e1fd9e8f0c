"""Retention: old audit rows, ended sessions with their conversations and expired client secrets
are deleted while the gateway serves; recent rows, live sessions and usable secrets stay."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

from ovos_realtime_gateway.store import RetentionRules

from .gateway_process import GatewayProcess, configured_gateway, http
from .realtime_helpers import realtime_socket

HOUR = 3600
RETENTION = {
    "audit_seconds": HOUR,
    "sessions_seconds": HOUR,
    "client_secrets_seconds": 60,
    "interval_seconds": 0.5,
    "batch_rows": 50,  # many short transactions
}
OLD_AUDIT, OLD_SESSIONS, ITEMS_EACH = 2000, 20, 30
AUDIT_ROW = (
    "insert into audit_log (id, ts, action, decision, status, detail) "
    "values (?, ?, 'x', 'allowed', 200, '{}')"
)


def _seed(db: sqlite3.Connection, now: float) -> None:
    """Rows as a long-running gateway leaves them: some past retention, some not."""
    (project,) = db.execute("select id from projects").fetchone()
    old, recent = now - 2 * HOUR, now - 600
    audit = AUDIT_ROW
    db.executemany(audit, [(f"aud_old_{i}", old - i) for i in range(OLD_AUDIT)])
    db.executemany(audit, [(f"aud_recent_{i}", recent) for i in range(10)])
    secret = (
        "insert into client_secrets (id, project_id, session_id, salt, hash, created_at, expires_at) "
        "values (?, ?, ?, 's', 'h', ?, ?)"
    )
    db.execute(secret, ("cs_expired_old", project, "sess_pending_expired", old - 600, old))
    db.execute(secret, ("cs_expired_recent", project, "sess_recent", now - 600, now - 10))
    db.execute(secret, ("cs_valid", project, "sess_pending_valid", old, now + HOUR))
    sessions: list[tuple[str, str, str | None, float]] = [
        (f"sess_old_{i}", "closed", None, old) for i in range(OLD_SESSIONS)
    ]
    sessions += [
        ("sess_recent", "closed", None, recent),
        ("sess_pending_expired", "pending", "cs_expired_old", old),
        ("sess_pending_valid", "pending", "cs_valid", old),  # its secret still opens it
    ]
    db.executemany(
        "insert into sessions (id, project_id, client_secret_id, type, config, status, created_at, "
        "updated_at) values (?, ?, ?, 'realtime', '{}', ?, ?, ?)",
        [(sid, project, cs, status, updated - 60, updated) for sid, status, cs, updated in sessions],
    )
    items = [(f"sess_old_{s}", f"item_{i}", i, old) for s in range(OLD_SESSIONS) for i in range(ITEMS_EACH)]
    items += [("sess_recent", f"item_{i}", i, recent) for i in range(5)]
    db.executemany(
        "insert into conversation_items (session_id, item_id, position, item, updated_at) "
        "values (?, ?, ?, '{}', ?)",
        items,
    )


def _ids(db_path: Path, sql: str) -> set[str]:
    with sqlite3.connect(db_path) as db:
        return {row[0] for row in db.execute(sql)}


def _deleted(gateway: GatewayProcess) -> dict[str, float]:
    text = http("GET", f"{gateway.base_url}/metrics").body.decode()
    prefix = "ovos_realtime_store_deleted_rows_total{table="
    return {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


async def _wait_for(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.1)


async def test_retention_deletes_what_is_old_and_keeps_what_is_live(tmp_path: Path) -> None:
    gateway, key = await asyncio.to_thread(
        configured_gateway, tmp_path, {"retention": RETENTION}, "alpha", "retention"
    )
    db_path = gateway.data_dir / "ovos-realtime.db"
    with sqlite3.connect(db_path) as db:
        _seed(db, time.time())
    async with gateway:
        async with realtime_socket(gateway.api_base, key) as reader:
            live = (await reader.until("session.created"))["session"]["id"]

            async def add_item(n: int) -> None:
                content = [{"type": "input_text", "text": str(n)}]
                item = {"type": "message", "role": "user", "content": content}
                await reader.send({"type": "conversation.item.create", "item": item})
                await reader.until("conversation.item.done", timeout=30)

            for n in range(3):
                await add_item(n)
            # the live session has been open for hours (as far as its row says)
            with sqlite3.connect(db_path) as db:
                db.execute("update sessions set updated_at = ? where id = ?", (time.time() - 2 * HOUR, live))
            old_audit = "select id from audit_log where id like 'aud_old_%'"
            await _wait_for(lambda: not _ids(db_path, old_audit), "old audit rows deleted")
            # a fresh load of old rows: the gateway serves REST and the live session while it goes
            with sqlite3.connect(db_path) as db:
                db.executemany(
                    AUDIT_ROW,
                    [(f"aud_more_{i}", time.time() - 2 * HOUR) for i in range(3000)],
                )
            n = 3
            while await asyncio.to_thread(
                _ids, db_path, "select id from audit_log where id like 'aud_more_%'"
            ):
                assert (
                    await asyncio.to_thread(http, "GET", f"{gateway.api_base}/models", key=key)
                ).status == 200
                await add_item(n)
                n += 1
                assert n < 10_000, "retention did not delete the second load"
            await add_item(n)

        status = f"select status from sessions where id = '{live}'"
        await _wait_for(lambda: _ids(db_path, status) == {"closed"}, "the live session stored closed")
        deleted = await asyncio.to_thread(_deleted, gateway)

    sessions = await asyncio.to_thread(_ids, db_path, "select id from sessions")
    assert not {s for s in sessions if s.startswith("sess_old_")}
    assert "sess_pending_expired" not in sessions
    assert {"sess_recent", "sess_pending_valid", live} <= sessions
    items = await asyncio.to_thread(_ids, db_path, "select distinct session_id from conversation_items")
    assert items == {"sess_recent", live}
    assert (
        len(
            await asyncio.to_thread(
                _ids, db_path, f"select item_id from conversation_items where session_id = '{live}'"
            )
        )
        == n + 1
    )
    assert (await asyncio.to_thread(_ids, db_path, "select id from client_secrets")) == {
        "cs_expired_recent",
        "cs_valid",
    }
    seeded_audit = await asyncio.to_thread(
        _ids,  # the rows seeded here, not those the gateway wrote (an opened session)
        db_path,
        "select id from audit_log"
        " where id like 'aud_recent_%' or id like 'aud_old_%' or id like 'aud_more_%'",
    )
    assert seeded_audit == {f"aud_recent_{i}" for i in range(10)}
    assert deleted["audit_log"] == OLD_AUDIT + 3000
    assert deleted["conversation_items"] == OLD_SESSIONS * ITEMS_EACH
    assert deleted["sessions"] == OLD_SESSIONS + 1
    assert deleted["client_secrets"] == 1
    assert "retention deleted" in gateway.logs()


def files_holding(data_dir: Path, needle: bytes) -> list[str]:
    """The files of the data dir (the database, its -wal, anything else) whose bytes hold `needle`."""
    return sorted(p.name for p in data_dir.rglob("*") if p.is_file() and needle in p.read_bytes())


async def test_a_conversation_is_kept_while_its_session_lives_then_for_conversation_seconds(
    tmp_path: Path,
) -> None:
    """Typed text stays in the store while the session lives (however old), and for
    `conversation_seconds` after it ended; then it is gone from every file of the data dir — the
    database's free pages and its WAL included — while the session's record stays."""
    retention = {"conversation_seconds": 2, "sessions_seconds": HOUR, "interval_seconds": 0.3}
    gateway, key = await asyncio.to_thread(
        configured_gateway, tmp_path, {"retention": retention}, "alpha", "conversation"
    )
    db_path = gateway.data_dir / "ovos-realtime.db"
    phrase = "my locker code is aubergine seventeen"
    items = "select item_id from conversation_items"
    async with gateway:
        async with realtime_socket(gateway.api_base, key) as reader:
            session = (await reader.until("session.created"))["session"]["id"]
            content = [{"type": "input_text", "text": phrase}]
            item = {"type": "message", "role": "user", "content": content}
            await reader.send({"type": "conversation.item.create", "item": item})
            await reader.until("conversation.item.done", timeout=30)
            await _wait_for(lambda: bool(_ids(db_path, items)), "the item stored")
            with sqlite3.connect(db_path) as db:  # as if it had been open for an hour
                db.execute("update sessions set updated_at = ? where id = ?", (time.time() - HOUR, session))
                db.execute(AUDIT_ROW, ("aud_marker", time.time() - 100 * 86_400))
            marker = "select id from audit_log where id = 'aud_marker'"
            await _wait_for(lambda: not _ids(db_path, marker), "a retention pass after the update")
            assert await asyncio.to_thread(_ids, db_path, items), (
                "a live session's conversation is kept, however old"
            )
            assert "conversation_items" not in (await asyncio.to_thread(_deleted, gateway))
            assert files_holding(gateway.data_dir, phrase.encode()), "the text is in the store meanwhile"
        closed = f"select id from sessions where id = '{session}' and status = 'closed'"
        await _wait_for(lambda: bool(_ids(db_path, closed)), "the session stored closed")
        await _wait_for(lambda: not _ids(db_path, items), "the ended session's items deleted", 60)
        await _wait_for(
            lambda: not files_holding(gateway.data_dir, phrase.encode()), "the text gone from every file", 30
        )
        assert (await asyncio.to_thread(_ids, db_path, "select id from sessions")) == {session}, (
            "the session's record stays"
        )
    assert not files_holding(gateway.data_dir, phrase.encode())


def test_a_conversation_goes_at_the_shorter_of_its_age_and_its_sessions() -> None:
    def items_cutoff(conversation: int, sessions: int) -> float | None:
        return RetentionRules(0, sessions, 0, conversation).cutoffs(1000.0).get("conversation_items")

    assert items_cutoff(10, 100) == 990.0
    assert items_cutoff(0, 100) == 900.0  # 0: with the session
    assert items_cutoff(100, 10) == 990.0  # never after the session's own record
    assert items_cutoff(10, 0) == 990.0  # sessions kept forever, conversations not
    assert items_cutoff(0, 0) is None
