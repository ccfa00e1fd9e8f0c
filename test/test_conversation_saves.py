"""Saving a conversation writes what changed, not all of it: one row per new or changed item,
a delete per deleted item, and the rows that stayed as they were are left alone."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from ovos_realtime_gateway.store import ItemLedger, SessionRecord, Store
from ovos_realtime_gateway.tasks import TaskSupervisor

from .gateway_process import GatewayProcess, create_key, http
from .realtime_helpers import realtime_socket

ITEMS = 300
COUNT_WRITES = """
create table test_item_writes (kind text not null, item_id text not null);
create trigger test_item_inserted after insert on conversation_items
  begin insert into test_item_writes values ('insert', new.item_id); end;
create trigger test_item_updated after update on conversation_items
  begin insert into test_item_writes values ('update', new.item_id); end;
create trigger test_item_deleted after delete on conversation_items
  begin insert into test_item_writes values ('delete', old.item_id); end;
"""


def _message(item_id: str, text: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
    }


def _stored(path: Path, session_id: str) -> list[tuple[str, str]]:
    """(item id, text) of the stored conversation, in its stored order."""
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "select item_id, item from conversation_items where session_id = ? order by position",
            (session_id,),
        ).fetchall()
    return [(item_id, json.loads(item)["content"][0]["text"]) for item_id, item in rows]


async def test_a_long_conversation_is_saved_item_by_item(tmp_path: Path) -> None:
    """300 items created over the WebSocket, one inserted in the middle, one at the start, one
    deleted: the store sees one insert per item and one delete — never a rewrite of what it has
    (the whole conversation was rewritten on every save: 46,355 row inserts and 46,054 deletes
    for these 300)."""
    data_dir = tmp_path / "data"
    key = await asyncio.to_thread(create_key, data_dir, "long")
    db_path = data_dir / "ovos-realtime.db"
    with sqlite3.connect(db_path) as db:  # counts every row the gateway writes (real sqlite triggers)
        db.executescript(COUNT_WRITES)
    async with GatewayProcess(data_dir) as gateway:
        async with realtime_socket(gateway.api_base, key) as reader:
            session_id = (await reader.until("session.created"))["session"]["id"]
            for i in range(ITEMS):
                item = _message(f"item_{i:04d}", f"utterance {i}")
                await reader.send({"type": "conversation.item.create", "item": item})
                await reader.until("conversation.item.done", timeout=30)
            middle = _message("item_middle", "inserted")
            await reader.send(
                {"type": "conversation.item.create", "previous_item_id": "item_0010", "item": middle}
            )
            await reader.until("conversation.item.done", timeout=30)
            first = _message("item_first", "at the start")
            await reader.send({"type": "conversation.item.create", "previous_item_id": "root", "item": first})
            await reader.until("conversation.item.done", timeout=30)
            await reader.send({"type": "conversation.item.delete", "item_id": "item_0020"})
            await reader.until("conversation.item.deleted", timeout=30)
            # REST is served all along (it reads the store for the key)
            assert (await asyncio.to_thread(http, "GET", f"{gateway.api_base}/models", key=key)).status == 200
        deadline = time.monotonic() + 30  # the close saves the session (after its conversation)
        status = None
        while status != "closed" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            with sqlite3.connect(db_path) as db:
                (status,) = db.execute("select status from sessions where id = ?", (session_id,)).fetchone()
        assert status == "closed"

    expected = [(f"item_{i:04d}", f"utterance {i}") for i in range(ITEMS)]
    expected.insert(11, ("item_middle", "inserted"))
    expected.insert(0, ("item_first", "at the start"))
    expected.remove(("item_0020", "utterance 20"))
    assert (await asyncio.to_thread(_stored, db_path, session_id)) == expected
    with sqlite3.connect(db_path) as db:
        writes = dict(db.execute("select kind, count(*) from test_item_writes group by kind").fetchall())
    assert writes == {"insert": ITEMS + 2, "delete": 1}, writes


async def _add_session(store: Store) -> None:
    project, _ = await store.ensure_project("p")
    record = SessionRecord("sess_1", project.id, "realtime", {}, "active", 0, 0)
    await store.save_session(record)


def _items(count: int) -> list[dict[str, Any]]:
    return [_message(f"item_{i}", f"text {i}") for i in range(count)]


async def test_each_save_writes_only_the_difference(store: Store) -> None:
    """On either backend (the `store` fixture: sqlite and PostgreSQL)."""
    await _add_session(store)
    ledger = ItemLedger()
    items = _items(200)

    async def save() -> tuple[int, int, bool]:
        changes = ledger.changes(items)
        await store.write_items("sess_1", changes)
        stored = [i["id"] for i in await store.list_items("sess_1")]
        assert stored == [i["id"] for i in items]
        return len(changes.rows), len(changes.removed), changes.replace_all

    assert await save() == (200, 0, True)  # the first save writes everything
    assert await save() == (0, 0, False)  # nothing changed: nothing written
    items.append(_message("item_new", "new"))
    assert await save() == (1, 0, False)
    items[5]["content"][0]["text"] = "changed in place"  # as a transcript arrives
    assert await save() == (1, 0, False)
    assert (await store.list_items("sess_1"))[5]["content"][0]["text"] == "changed in place"
    del items[7]
    assert await save() == (0, 1, False)
    items.insert(10, _message("item_mid", "mid"))
    items.insert(0, _message("item_root", "root"))
    assert await save() == (2, 0, False)
    for n in range(12):  # the gap between two neighbours runs out: renumbered once, in order
        items.insert(12, _message(f"item_squeeze_{n}", "squeezed"))
        rows, _, _ = await save()
        assert rows == 1 or rows == len(items)
    ledger.forget()  # a failed write: the next save rewrites the conversation
    assert await save() == (len(items), 0, True)


async def test_saves_reach_the_store_in_order(store: Store) -> None:
    """Changes are computed when a save is asked for and queued (sqlite: on the one store thread;
    PostgreSQL: behind the session's lock), so saves started together land in the order they were
    asked for: also those asked for while earlier ones are finishing and others still wait."""
    await _add_session(store)
    ledger = ItemLedger()
    items: list[dict[str, Any]] = []
    saving = TaskSupervisor("test-saves")
    saves: list[asyncio.Task[None]] = []
    try:
        for i in range(100):
            items.append(_message(f"item_{i}", "x"))
            if i % 7 == 3:
                del items[0]
            saves.append(saving.spawn(f"save-{i}", store.write_items("sess_1", ledger.changes(items))))
            if i % 10 == 9:
                await saves[i - 6]  # some done, some waiting, and the next ones new
        await asyncio.gather(*saves)
    finally:
        await saving.close()
    assert [i["id"] for i in await store.list_items("sess_1")] == [i["id"] for i in items]
