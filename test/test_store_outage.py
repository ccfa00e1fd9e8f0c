"""The store unreachable for a while, end to end: a real gateway process on a real PostgreSQL that
is stopped and started again (its own throwaway cluster: the session's is shared), the openai SDK.
While PostgreSQL is down REST answers 503 `store_unavailable` with `Retry-After` (not a 500),
/healthz and /readyz say the store is unreachable, a new session is refused the same way, and a
live session goes on, its conversation kept; once PostgreSQL is back, the gateway serves again
without a restart and the kept conversation is in the store. A locked sqlite store gets the same
503, never a 500 with a traceback."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from ovos_realtime_gateway.store.postgres import PostgresStore

from .gateway_process import GatewayProcess, create_key, http
from .postgres_server import PostgresServer
from .realtime_helpers import realtime_socket
from .waiting import wait_until_async

pytestmark = pytest.mark.slow


def _message(text: str) -> Any:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of this module's own: its tests stop and start it."""
    with PostgresServer() as server:
        yield server


def _unavailable(error: openai.APIStatusError) -> None:
    """The 503 a client gets while the store is away: OpenAI's envelope, a code, Retry-After."""
    assert error.status_code == 503, error
    assert error.response.headers["retry-after"] == "5"
    body = error.response.json()["error"]
    assert (body["type"], body["code"]) == ("server_error", "store_unavailable"), body


async def test_postgresql_down_then_back(tmp_path: Path, own_postgres: PostgresServer) -> None:
    url = await asyncio.to_thread(own_postgres.create_database)
    config = tmp_path / "pg.json"
    config.write_text(json.dumps({"store_url": url}))
    data_dir = tmp_path / "data"
    key = await asyncio.to_thread(create_key, data_dir, "alpha", config)
    async with GatewayProcess(data_dir, "--config", str(config), log_name="outage") as gateway:
        sdk = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
        try:
            async with sdk.realtime.connect(model="gpt-realtime") as conn:
                created_event = await conn.recv()
                assert created_event.type == "session.created"
                session_id = str(created_event.session.id)  # type: ignore[union-attr]  # the SDK types the event as a union of every server event
                await conn.conversation.item.create(item=_message("before"))
                await _item_done(conn)

                await asyncio.to_thread(own_postgres.halt)
                with pytest.raises(openai.APIStatusError) as refused:
                    await sdk.realtime.client_secrets.create(session={"type": "realtime"})
                _unavailable(refused.value)
                health = await asyncio.to_thread(http, "GET", f"{gateway.base_url}/healthz")
                assert health.status == 200 and health.json()["store"] == "unreachable", health.body
                ready = await asyncio.to_thread(http, "GET", f"{gateway.base_url}/readyz")
                store_check = ready.json()["checks"]["store"]
                assert ready.status == 503 and not store_check["ok"], ready.body
                assert "unreachable" in store_check["error"], store_check
                async with realtime_socket(gateway.api_base, key) as newcomer:
                    first = await newcomer.next(timeout=30)
                    assert first["type"] == "error" and first["error"]["code"] == "store_unavailable", first

                # the live session goes on: its event is answered, its write kept for later
                await conn.conversation.item.create(item=_message("during"))
                await _item_done(conn)
                ready = await asyncio.to_thread(http, "GET", f"{gateway.base_url}/readyz")
                assert ready.json()["checks"]["store"].get("pending_writes", 0) >= 1, ready.body

                await asyncio.to_thread(own_postgres.resume)
                secret = await _eventually_created(sdk)
                assert secret.value.startswith("ek_")
                store = PostgresStore(url)
                try:
                    await wait_until_async(
                        lambda: _texts_are(store, session_id, ["before", "during"]),
                        "the conversation kept during the outage stored",
                    )
                finally:
                    await store.close()
                await conn.conversation.item.create(item=_message("after"))
                await _item_done(conn)
        finally:
            await sdk.close()
        health = await asyncio.to_thread(http, "GET", f"{gateway.base_url}/healthz")
        assert health.json()["store"] == "ok"
        logs = gateway.logs()
    assert "unhandled error" not in logs, logs
    assert "the store answers again: wrote" in logs, logs


async def _item_done(conn: Any) -> None:
    async for event in conn:
        if event.type == "conversation.item.done":
            return
        assert event.type != "error", event


async def _eventually_created(sdk: openai.AsyncOpenAI) -> Any:
    """The first client secret minted once PostgreSQL is back (503s until the pool reconnects)."""
    result: list[Any] = []

    async def minted() -> bool:
        try:
            result.append(await sdk.realtime.client_secrets.create(session={"type": "realtime"}))
        except openai.APIStatusError as error:
            _unavailable(error)
            return False
        return True

    await wait_until_async(minted, "a client secret minted after PostgreSQL came back", every=0.5)
    return result[0]


async def _texts_are(store: PostgresStore, session_id: str, texts: list[str]) -> bool:
    items = await store.list_items(session_id)
    return [item["content"][0]["text"] for item in items] == texts


def test_a_locked_sqlite_store_is_a_503_not_a_500(tmp_path: Path) -> None:
    """Another process holds sqlite's write lock past the store's busy timeout (5 s): minting a
    client secret (a write) answers 503 `store_unavailable`; once the lock is gone it works."""
    data_dir = tmp_path / "data"
    key = create_key(data_dir, "alpha")
    with GatewayProcess(data_dir, log_name="locked") as gateway:
        holder = sqlite3.connect(data_dir / "ovos-realtime.db", isolation_level=None)
        try:
            holder.execute("begin exclusive")
            body = {"session": {"type": "realtime"}}
            locked = http("POST", f"{gateway.api_base}/realtime/client_secrets", json_body=body, key=key)
            assert locked.status == 503, locked.body
            assert locked.headers["retry-after"] == "5"
            assert locked.json()["error"]["code"] == "store_unavailable"
        finally:
            holder.close()  # the lock goes with the connection
        minted = http("POST", f"{gateway.api_base}/realtime/client_secrets", json_body=body, key=key)
        assert minted.status == 200, minted.body
        logs = gateway.logs()
    assert "unhandled error" not in logs and "database is locked" in logs, logs
