"""A replica paused longer than its lease, then resumed (probe of issue 18; a GC pause, a VM
migration, a starved CPU): replicas A and B (real processes) on one PostgreSQL and one Redis,
`lease_seconds` 1; A is stopped with SIGSTOP and continued with SIGCONT.

While A is paused B cannot tell it from a dead replica, and closes the records A holds
(`replica_lost`), as it must for a killed one. But A was not dead: its session goes on once it
runs again, and its record must say so: when A finds its lease was gone (`RedisRegistry._beat`
registers again) it marks what it still holds live again (`OrphanSweeper`, `Store.reopen_lost`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psycopg
import pytest

from .gateway_process import GatewayProcess, create_key
from .postgres_server import PostgresServer
from .realtime_helpers import EventReader, ws_url
from .redis_server import RedisServer
from .waiting import wait_until_async

pytestmark = pytest.mark.slow


@dataclass
class Pair:
    a: GatewayProcess
    b: GatewayProcess
    key: str
    store_url: str


@pytest.fixture
def pair(tmp_path: Path, postgres: PostgresServer, redis_server: RedisServer) -> Iterator[Pair]:
    store_url = postgres.create_database("paused")
    cluster = {
        "redis_url": redis_server.url,
        "key_prefix": "test-paused:",
        "hop_secret": "h",
        "lease_seconds": 1,
    }
    config = tmp_path / "replica.json"
    config.write_text(json.dumps({"store_url": store_url, "cluster": cluster}))
    key = create_key(None, "alpha", config)
    a = GatewayProcess(tmp_path / "a-data", "--config", str(config), log_name="a")
    b = GatewayProcess(tmp_path / "b-data", "--config", str(config), log_name="b")
    try:
        a.start(60)
        b.start(60)
        yield Pair(a, b, key, store_url)
    finally:
        if a.proc is not None:
            os.kill(a.proc.pid, signal.SIGCONT)
        a.stop()
        b.stop()


def _row(store_url: str, session_id: str) -> tuple[str, str | None]:
    with psycopg.connect(store_url) as db:
        status, reason = db.execute(
            "select status, end_reason from sessions where id = %s", [session_id]
        ).fetchone() or ("missing", None)
    return str(status), reason


async def test_a_paused_replicas_live_session_is_live_in_the_store_again(pair: Pair) -> None:
    assert pair.a.proc is not None
    async with aiohttp.ClientSession() as client:
        url = ws_url(pair.a.api_base, model="gpt-realtime")
        async with client.ws_connect(url, headers={"Authorization": f"Bearer {pair.key}"}) as ws:
            session = EventReader(ws)
            session_id = (await session.until("session.created", 30))["session"]["id"]
            os.kill(pair.a.proc.pid, signal.SIGSTOP)
            try:
                await wait_until_async(
                    lambda: "replica_lost" in pair.b.logs(), "B closing the paused A's records", 60
                )
            finally:
                os.kill(pair.a.proc.pid, signal.SIGCONT)
            assert await asyncio.to_thread(_row, pair.store_url, session_id) == ("closed", "replica_lost")
            item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "here"}]}
            await session.send({"type": "conversation.item.create", "item": item})
            await session.until("conversation.item.added", 30)  # A serves the session again
            await wait_until_async(
                lambda: asyncio.to_thread(lambda: _row(pair.store_url, session_id)[0] == "active"),
                "the live session's record active again",
                10,
            )
