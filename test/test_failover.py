"""Replicas failing, end to end (issue 18's failure cases): real gateway processes on one
throwaway PostgreSQL database and one redis-server, the openai SDK. A replica killed with SIGKILL
has its live session's record closed by a survivor (`replica_lost`), and its key, its `ek_` and
its finished conversation all work through the survivor; live replicas never close each other's
sessions, nor does a third one starting; the event bridge (a Redis stream) tells of the closing.
Redis restarted under two replicas: both register again, a session opened after it registers, the
sessions held across it stay open, and the shared session limit holds again."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from ovos_realtime_gateway.store import SessionRecord
from ovos_realtime_gateway.store.postgres import PostgresStore

from .gateway_process import GatewayProcess, cli
from .postgres_server import PostgresServer
from .realtime_helpers import EventReader, realtime_socket
from .redis_server import RedisServer
from .waiting import wait_until_async

pytestmark = pytest.mark.slow
LEASE_S = 2  # a sweep every 2 s; a killed replica's records closed within ~3 leases
HOP_SECRET = "hop-secret-of-the-failover-test"


@dataclass
class Cluster:
    root: Path
    configs: dict[str, Path]
    key: str  # project "alpha"
    solo: str  # project "solo": one concurrent session over all replicas
    store: PostgresStore
    redis: RedisServer
    prefix: str

    def replica(self, name: str) -> GatewayProcess:
        return GatewayProcess(self.root / f"{name}-data", "--config", str(self.configs[name]), log_name=name)

    async def leases(self) -> set[str]:
        client = self.redis.client()
        keys = await asyncio.to_thread(client.keys, f"{self.prefix}replica:*")
        return {str(k).rsplit(":", 1)[1] for k in keys}

    async def wait_for_leases(self, count: int) -> set[str]:
        found: set[str] = set()

        async def enough() -> bool:
            nonlocal found
            try:
                found = await self.leases()
            except Exception:  # Redis is starting
                return False
            return len(found) >= count

        await wait_until_async(enough, f"{count} replica leases in Redis")
        return found

    async def session(self, session_id: str) -> SessionRecord:
        record = await self.store.get_session(session_id)
        assert record is not None, session_id
        return record


@pytest.fixture
async def cluster(
    tmp_path: Path, postgres: PostgresServer, redis_server: RedisServer, request: pytest.FixtureRequest
) -> AsyncIterator[Cluster]:
    """Configs for replicas a, b, c (each its own data dir) on a new database and key prefix."""
    url = await asyncio.to_thread(postgres.create_database, "failover")
    prefix = f"failover-{request.node.name[:40]}:"
    settings: dict[str, Any] = {
        "store_url": url,
        "cluster": {
            "redis_url": redis_server.url,
            "key_prefix": prefix,
            "hop_secret": HOP_SECRET,
            "lease_seconds": LEASE_S,
        },
        "shared_limits": {"redis_url": redis_server.url, "key_prefix": prefix + "limits:"},
        "project_limits": {"solo": {"concurrent_sessions": 1}},
        "event_bridge": {"redis_url": redis_server.url, "stream": prefix + "events"},
    }
    configs = {}
    for name in ("a", "b", "c"):
        configs[name] = tmp_path / f"{name}.json"
        configs[name].write_text(json.dumps(settings))

    async def key(project: str) -> str:
        done = await asyncio.to_thread(
            cli,
            "keys",
            "create",
            "--project",
            project,
            "--config",
            str(configs["a"]),
            data_dir=tmp_path / "cli",
        )
        return done.stdout.strip().splitlines()[-1]

    store = PostgresStore(url)
    try:
        yield Cluster(tmp_path, configs, await key("alpha"), await key("solo"), store, redis_server, prefix)
    finally:
        await store.close()


@asynccontextmanager
async def _replicas(cluster: Cluster, *names: str) -> AsyncIterator[list[GatewayProcess]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(cluster.replica(name)) for name in names]


async def _opened(reader: EventReader) -> str:
    """The id of the session a raw socket opened."""
    created = await reader.next(timeout=30)
    assert created["type"] == "session.created", created
    return str(created["session"]["id"])


async def _say(reader: EventReader, text: str) -> None:
    """A user message in a live session, answered (`conversation.item.done`): it is alive."""
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    await reader.send({"type": "conversation.item.create", "item": item})
    await reader.until("conversation.item.done", timeout=30)


async def test_live_replicas_never_close_each_others_sessions(cluster: Cluster) -> None:
    async with _replicas(cluster, "a", "b") as (a, b):
        await cluster.wait_for_leases(2)
        async with (
            realtime_socket(a.api_base, cluster.key) as on_a,
            realtime_socket(b.api_base, cluster.key) as on_b,
        ):
            ids = [await _opened(on_a), await _opened(on_b)]
            holders = {(await cluster.session(i)).replica_id for i in ids}
            assert len(holders) == 2 and holders <= await cluster.leases(), holders
            # watched over three sweep periods of each replica: never closed
            deadline = time.monotonic() + 3 * LEASE_S
            while time.monotonic() < deadline:
                assert [(await cluster.session(i)).status for i in ids] == ["active", "active"]
                await asyncio.sleep(0.25)
            async with cluster.replica("c"):  # a third replica starting (its start is a first look)
                await cluster.wait_for_leases(3)
                deadline = time.monotonic() + 2 * LEASE_S
                while time.monotonic() < deadline:
                    assert [(await cluster.session(i)).status for i in ids] == ["active", "active"]
                    await asyncio.sleep(0.25)
            await _say(on_a, "still here")
            await _say(on_b, "me too")
        logs = a.logs() + b.logs()
    assert "replica_lost" not in logs, logs


async def test_a_replica_killed_with_sigkill(cluster: Cluster) -> None:
    """SIGKILL A: B closes A's live session record (`replica_lost`, in its logs); the key, the
    `ek_` minted on A and the conversation finished on A all work through B."""
    async with _replicas(cluster, "a", "b") as (a, b):
        leases = await cluster.wait_for_leases(2)
        sdk_a = openai.AsyncOpenAI(base_url=a.api_base, api_key=cluster.key, max_retries=0)
        sdk_b = openai.AsyncOpenAI(base_url=b.api_base, api_key=cluster.key, max_retries=0)
        try:
            async with sdk_a.realtime.connect(model="gpt-realtime") as conn:
                created = await conn.recv()
                finished_id = str(created.session.id)  # type: ignore[union-attr]  # the SDK types the event as a union of every server event
                item: Any = {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "kept"}],
                }
                await conn.conversation.item.create(item=item)
                async for event in conn:
                    if event.type == "conversation.item.done":
                        break
            secret = await sdk_a.realtime.client_secrets.create(
                session={"type": "realtime", "instructions": "A's"}
            )
            assert secret.value.startswith("ek_")
            async with realtime_socket(a.api_base, cluster.key) as live:
                live_id = await _opened(live)
                await _say(live, "alive on A")
                record = await cluster.session(live_id)
                assert record.status == "active" and record.replica_id in leases, record
                killed = record.replica_id
                await wait_until_async(
                    lambda: _status_is(cluster, finished_id, "closed"), "A stored the finished session closed"
                )
                assert a.proc is not None
                a.proc.kill()  # SIGKILL: no goodbye, the lease expires on its own
                await asyncio.to_thread(a.proc.wait, 30)

            await wait_until_async(
                lambda: _status_is(cluster, live_id, "closed"), "B closed A's live session record"
            )
            lost = await cluster.session(live_id)
            assert lost.end_reason == "replica_lost" and lost.replica_id == killed, lost
            owner_key = f"{cluster.prefix}owner:session:{live_id}"  # no leak in Redis: it expires
            client = cluster.redis.client()
            await wait_until_async(
                lambda: asyncio.to_thread(lambda: not client.exists(owner_key)), "A's owner key expired"
            )
            assert [i["content"][0]["text"] for i in await cluster.store.list_items(live_id)] == [
                "alive on A"
            ]

            # nothing lost: the key, the ek_ and the finished conversation, through B
            assert (
                await sdk_b.realtime.client_secrets.create(session={"type": "realtime"})
            ).value.startswith("ek_")
            ephemeral = openai.AsyncOpenAI(base_url=b.api_base, api_key=secret.value, max_retries=0)
            try:
                async with ephemeral.realtime.connect(model="gpt-realtime") as conn:
                    opened = await conn.recv()
                    assert opened.type == "session.created", opened
                    assert opened.session.id == secret.session.id and opened.session.instructions == "A's"  # type: ignore[union-attr]  # a union of every server event
            finally:
                await ephemeral.close()
            finished = await sdk_b.get(f"/realtime/sessions/{finished_id}", cast_to=object)
            assert isinstance(finished, dict) and finished["id"] == finished_id, finished
            assert [i["content"][0]["text"] for i in await cluster.store.list_items(finished_id)] == ["kept"]
            assert killed not in await cluster.leases()
        finally:
            await sdk_a.close()
            await sdk_b.close()
        b_logs = b.logs()
    assert f"session {live_id} held by replica {killed} that is gone: closed (replica_lost)" in b_logs
    told = [
        e for e in await _events(cluster) if e.get("session_id") == live_id and e["kind"] == "session.closed"
    ]
    assert told and told[-1]["reason"] == "replica_lost" and told[-1]["replica_id"] == killed, told


async def _events(cluster: Cluster) -> list[dict[str, str]]:
    """The event bridge's stream (the replicas' events), oldest first."""
    entries: Any = await asyncio.to_thread(cluster.redis.client().xrange, cluster.prefix + "events")
    return [dict(fields) for _, fields in entries or []]


async def _status_is(cluster: Cluster, session_id: str, status: str) -> bool:
    return (await cluster.session(session_id)).status == status


async def test_redis_restarted_under_two_replicas(cluster: Cluster) -> None:
    """Redis killed and started again empty: both replicas register again (their leases and the
    session held across it), nothing is closed, a session opened after registers, and the shared
    limit of one "solo" session holds again over both replicas."""
    async with _replicas(cluster, "a", "b") as (a, b):
        await cluster.wait_for_leases(2)
        async with realtime_socket(a.api_base, cluster.solo) as held:
            held_id = await _opened(held)
            await asyncio.to_thread(cluster.redis.kill)
            await asyncio.to_thread(cluster.redis.start)
            replicas = await cluster.wait_for_leases(2)
            owner = cluster.redis.client()
            owner_key = f"{cluster.prefix}owner:session:{held_id}"
            await wait_until_async(
                lambda: asyncio.to_thread(owner.get, owner_key), "the held session registered again"
            )
            assert await asyncio.to_thread(owner.get, owner_key) in replicas

            async def refused_on_b() -> bool:  # the held session's slot written back into Redis
                async with realtime_socket(b.api_base, cluster.solo) as second:
                    first = await second.next(timeout=30)
                    return bool(
                        first["type"] == "error" and first["error"]["code"] == "session_limit_reached"
                    )

            await wait_until_async(refused_on_b, "the solo limit holds over both replicas again")
            async with realtime_socket(b.api_base, cluster.key) as after:
                after_id = await _opened(after)
                await wait_until_async(
                    lambda: asyncio.to_thread(owner.get, f"{cluster.prefix}owner:session:{after_id}"),
                    "a session opened after the restart registered",
                )
            # two sweep periods after the restart: the held session is still open, and alive
            deadline = time.monotonic() + 2 * LEASE_S
            while time.monotonic() < deadline:
                assert (await cluster.session(held_id)).status == "active"
                await asyncio.sleep(0.25)
            await _say(held, "after the restart")
        logs = a.logs() + b.logs()
    assert "replica_lost" not in logs, logs
