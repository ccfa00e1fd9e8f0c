"""`ovos-realtime data purge` deletes a person's data on request while the gateway serves:
sessions with their conversations, client secrets and calls, by session or by project (and
date); a live session is refused; what went is audited by id only."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .gateway_process import GatewayProcess, cli, configured_gateway, create_key, http
from .realtime_helpers import EventReader, realtime_socket
from .test_retention import files_holding

pytestmark = pytest.mark.slow
DAY = 86_400


async def _say(reader: EventReader, text: str) -> str:
    """Open the session, add a typed message; the session's id."""
    session = (await reader.until("session.created"))["session"]["id"]
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    await reader.send({"type": "conversation.item.create", "item": item})
    await reader.until("conversation.item.done", timeout=30)
    return str(session)


async def _talk(gateway: GatewayProcess, key: str, text: str) -> str:
    async with realtime_socket(gateway.api_base, key) as reader:
        return await _say(reader, text)


def _rows(db_path: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_path) as db:
        return db.execute(sql, args).fetchall()


async def _wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.1)


def _purge(data_dir: Path, *args: str) -> tuple[int, str, str]:
    done = cli("data", "purge", *args, data_dir=data_dir, check=False)
    return done.returncode, done.stdout, done.stderr


async def test_purge_by_date_by_session_and_by_project_while_the_gateway_serves(tmp_path: Path) -> None:
    gateway, alpha = await asyncio.to_thread(configured_gateway, tmp_path, {}, "alpha", "purge")
    beta = await asyncio.to_thread(create_key, gateway.data_dir, "beta")
    db_path = gateway.data_dir / "ovos-realtime.db"
    said = {
        name: f"{name} told us the code word is marmalade {n}"
        for n, name in enumerate(("old", "new", "live", "beta"))
    }
    async with gateway:
        old = await _talk(gateway, alpha, said["old"])
        new = await _talk(gateway, alpha, said["new"])
        other = await _talk(gateway, beta, said["beta"])
        minted = (
            await asyncio.to_thread(
                http,
                "POST",
                f"{gateway.api_base}/realtime/client_secrets",
                json_body={"session": {"type": "realtime"}},
                key=alpha,
            )
        ).json()
        pending, ek = minted["session"]["id"], minted["value"]
        with sqlite3.connect(db_path) as db:  # history: the first session is ten days old, and had a call
            db.execute("update sessions set created_at = ? where id = ?", (time.time() - 10 * DAY, old))
            db.execute(
                "insert into calls (id, project_id, session_id, transport, status, created_at, ended_at) "
                "select 'rtc_old', project_id, id, 'webrtc', 'ended', created_at, created_at "
                "from sessions where id = ?",
                (old,),
            )
        five_days_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 5 * DAY))

        code, out, err = await asyncio.to_thread(
            _purge, gateway.data_dir, "--project", "alpha", "--before", five_days_ago
        )
        assert code == 0, err
        assert out.splitlines()[1:] == [old]
        assert "purged 1 sessions, 1 conversation items, 0 client secrets, 1 calls" in out
        assert not (await asyncio.to_thread(_rows, db_path, "select 1 from sessions where id = ?", old))
        assert not (await asyncio.to_thread(_rows, db_path, "select 1 from calls where id = 'rtc_old'"))
        assert await asyncio.to_thread(_rows, db_path, "select 1 from sessions where id = ?", new)

        async with realtime_socket(gateway.api_base, alpha) as reader:
            live = await _say(reader, said["live"])
            code, _, err = await asyncio.to_thread(_purge, gateway.data_dir, "--session", live)
            assert code == 1 and f"live ({live})" in err, err
            code, _, err = await asyncio.to_thread(_purge, gateway.data_dir, "--project", "alpha")
            assert code == 1 and "live" in err, err
            assert await asyncio.to_thread(
                _rows, db_path, "select 1 from conversation_items where session_id = ?", live
            ), "nothing purged"
            assert await asyncio.to_thread(_rows, db_path, "select 1 from sessions where id = ?", new), (
                "nothing purged"
            )
            await reader.send({"type": "session.update", "session": {"type": "realtime"}})
            await reader.until("session.updated")  # the session was not disturbed
        ended = "select 1 from sessions where id = ? and status = 'closed'"
        await _wait_for(lambda: _rows(db_path, ended, live), "the live session ended")

        code, out, err = await asyncio.to_thread(_purge, gateway.data_dir, "--project", "alpha")
        assert code == 0, err
        assert set(out.splitlines()[1:]) == {new, live, pending}
        assert "purged 3 sessions, 2 conversation items, 1 client secrets, 0 calls" in out
        left = {r[0] for r in (await asyncio.to_thread(_rows, db_path, "select id from sessions"))}
        assert left == {other}, "the other project's session stays"
        assert (
            await asyncio.to_thread(http, "GET", f"{gateway.api_base}/models", key=alpha)
        ).status == 200, "keys stay; it serves"
        assert (await asyncio.to_thread(http, "GET", f"{gateway.api_base}/models", key=ek)).status == 401, (
            "the purged ek_ is gone"
        )
        await _wait_for(
            lambda: (
                not any(files_holding(gateway.data_dir, said[n].encode()) for n in ("old", "new", "live"))
            ),
            "the purged text gone from every file of the data dir",
        )
        assert files_holding(gateway.data_dir, said["beta"].encode()), "what was not purged stays"

    audits = await asyncio.to_thread(
        _rows,
        db_path,
        "select project_id, principal, resource, detail from audit_log where action = 'data.purge'",
    )
    assert len(audits) == 2
    details = [json.loads(str(row[3])) for row in audits]
    assert details[0]["sessions"] == [old] and details[0]["calls"] == ["rtc_old"]
    assert set(details[1]["sessions"]) == {new, live, pending} and details[1]["items"] == 2
    (secret,) = details[1]["client_secrets"]
    assert secret.removeprefix("cs_") in ek, "the minted ek_'s record"
    assert all(row[1] == "cli" for row in audits)
    dump = json.dumps([list(r) for r in (await asyncio.to_thread(_rows, db_path, "select * from audit_log"))])
    assert "marmalade" not in dump and ek not in dump, "the audit trail holds ids, no content"
