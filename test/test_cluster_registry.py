"""The registry of replicas (`cluster/registry.py`) on a real redis-server: owners found across
replicas, a closed replica's and a silent (lease expired) replica's things without owner, a
restarted Redis given the lease and the owners back by the heartbeat, and a real gateway process
registering itself at start and leaving at stop."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from ovos_realtime_gateway.cluster.registry import (
    Kind,
    LocalRegistry,
    RedisRegistry,
    RegistryUnavailable,
    Replica,
)
from ovos_realtime_gateway.settings import ClusterSettings, SharedLimitsSettings

from .gateway_process import GatewayProcess
from .redis_server import RedisServer

LEASE_S = 1.0  # the shortest lease: a silent replica is gone a second after its last renewal


def _settings(redis_server: RedisServer, prefix: str) -> ClusterSettings:
    return ClusterSettings(
        redis_url=redis_server.url, key_prefix=prefix, hop_secret="s3cret", lease_seconds=LEASE_S
    )


async def _until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {seconds}s: {what}")


async def _started(settings: ClusterSettings, url: str) -> RedisRegistry:
    registry = RedisRegistry(settings, None)
    registry.serving_at(url)
    await registry.start()
    await _until(lambda: _is_live(registry, registry.replica.id), f"{url}'s lease written", seconds=10)
    return registry


async def _is_live(registry: RedisRegistry, replica_id: str) -> bool:
    try:
        return replica_id in await registry.live_replicas() and await _leased(registry, replica_id)
    except RegistryUnavailable:
        return False


async def _leased(registry: RedisRegistry, replica_id: str) -> bool:
    return bool(await registry.client.exists(registry._lease_key(replica_id)))


@pytest.fixture
async def pair(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[RedisRegistry, RedisRegistry]]:
    """Replicas A and B on one Redis, under a prefix of this test's own."""
    settings = _settings(redis_server, f"test-registry:{request.node.name}:")
    a = await _started(settings, "http://127.0.0.1:1001")
    b = await _started(settings, "http://127.0.0.1:1002")
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_owners_are_found_across_replicas(pair: tuple[RedisRegistry, RedisRegistry]) -> None:
    a, b = pair
    assert a.replica.id.startswith("rep_") and len(a.replica.id) == 16 and a.replica.id != b.replica.id
    await a.claim("call", "rtc_1")
    await b.claim("session", "sess_1")
    assert await b.owner("call", "rtc_1") == Replica(a.replica.id, "http://127.0.0.1:1001")
    assert await a.owner("session", "sess_1") == Replica(b.replica.id, "http://127.0.0.1:1002")
    assert await a.owner("call", "rtc_1") == a.replica
    assert await a.owner("session", "rtc_1") is None  # kinds are apart
    assert await b.owner("call", "rtc_unknown") is None
    assert set(await a.live_replicas()) == set(await b.live_replicas()) == {a.replica.id, b.replica.id}
    await a.release("call", "rtc_1")
    assert await b.owner("call", "rtc_1") is None
    await b.claim("call", "rtc_1")  # claimed elsewhere since: A's late release leaves it alone
    await a.release("call", "rtc_1")
    assert await a.owner("call", "rtc_1") == b.replica


async def test_a_closed_replica_owns_nothing(redis_server: RedisServer) -> None:
    settings = _settings(redis_server, "test-registry:closed:")
    a = await _started(settings, "http://127.0.0.1:1001")
    b = await _started(settings, "http://127.0.0.1:1002")
    try:
        await a.claim("call", "rtc_2")
        assert (await b.owner("call", "rtc_2")) == a.replica
        await a.close()
        assert await b.owner("call", "rtc_2") is None
        assert set(await b.live_replicas()) == {b.replica.id}
        assert not await redis_server_keys(redis_server, "test-registry:closed:owner:*")
    finally:
        await b.close()


async def test_a_silent_replica_is_gone_when_its_lease_expires(
    pair: tuple[RedisRegistry, RedisRegistry],
) -> None:
    """A replica whose heartbeat stopped (hung, cut off, SIGKILLed) leaves its owner keys behind,
    but they name a replica without a lease: no owner, and it is not among the live replicas."""
    a, b = pair
    await a.claim("call", "rtc_3")
    await a.claim("session", "sess_3")
    await a.tasks.close()  # the heartbeat stops; the lease is not given up
    assert await b.owner("call", "rtc_3") == a.replica
    await _until(lambda: _gone(b, a.replica.id), "A's lease expired")
    assert await b.owner("call", "rtc_3") is None
    assert await b.owner("session", "sess_3") is None
    assert not await b.client.exists(b._owner_key("call", "rtc_3"))  # the stale key was dropped
    assert set(await b.live_replicas()) == {b.replica.id}


async def _gone(registry: RedisRegistry, replica_id: str) -> bool:
    return replica_id not in await registry.live_replicas()


async def test_a_silent_replicas_owner_keys_expire_on_their_own(
    pair: tuple[RedisRegistry, RedisRegistry],
) -> None:
    """Nobody looks a dead replica's things up: its owner keys still leave Redis, one TTL after its
    last beat, so replicas SIGKILLed over months do not pile keys up. The live one's stay."""
    a, b = pair
    await a.claim("call", "rtc_10")
    await a.claim("session", "sess_10")
    await b.claim("call", "rtc_11")
    keys = [a._owner_key("call", "rtc_10"), a._owner_key("session", "sess_10")]
    for key in keys:
        assert 0 < await b.client.pttl(key) <= a.owner_ttl_ms  # every owner key expires
    await a.tasks.close()  # the heartbeat stops, as under SIGKILL: nothing is given up or deleted
    stopped = time.monotonic()

    async def expired() -> bool:
        return not await b.client.exists(*keys)  # a raw look: `owner` would drop them itself

    await _until(expired, "the silent replica's owner keys expired")
    assert time.monotonic() - stopped >= LEASE_S  # (not dropped early: they outlived its lease)
    assert await b.owner("call", "rtc_11") == b.replica
    assert await a.client.get(b._owner_key("call", "rtc_11")) == b.replica.id


async def test_a_live_replicas_owner_keys_outlive_their_ttl_and_a_slow_redis(
    redis_server: RedisServer, pair: tuple[RedisRegistry, RedisRegistry], caplog: pytest.LogCaptureFixture
) -> None:
    """The heartbeat renews the owner keys with the lease: over three TTLs, with Redis frozen
    (SIGSTOP, a deliberately injected fault) for longer than a beat in the middle, none of a live
    replica's keys is ever missing, and its things are still found from the other replica."""
    a, b = pair
    things: list[tuple[Kind, str]] = [("call", f"rtc_live_{n}") for n in range(20)] + [
        ("session", "sess_live")
    ]
    for kind, thing_id in things:
        await a.claim(kind, thing_id)
    keys = [a._owner_key(kind, thing_id) for kind, thing_id in things]
    ttl_s = a.owner_ttl_ms / 1000
    started = time.monotonic()

    async def all_present_until(moment: float) -> None:
        while time.monotonic() < moment:
            assert await b.client.exists(*keys) == len(keys), "a live replica's owner key expired"
            await asyncio.sleep(0.05)

    await all_present_until(started + 1.5 * ttl_s)
    await asyncio.to_thread(redis_server.freeze)
    try:
        await asyncio.sleep(0.75 * LEASE_S)  # the fault's length (a beat fails), not a synchronisation
    finally:
        await asyncio.to_thread(redis_server.thaw)
    assert "cluster: Redis unavailable" in caplog.text  # a beat did fail meanwhile
    await all_present_until(started + 3 * ttl_s)
    for kind, thing_id in things:
        assert await b.owner(kind, thing_id) == a.replica


async def test_a_restarted_redis_gets_the_lease_and_owners_back(
    redis_server: RedisServer, pair: tuple[RedisRegistry, RedisRegistry]
) -> None:
    """Redis killed and restarted empty: while it is down nothing hangs (another replica's thing is
    unknown, at once), a claim made meanwhile is kept, and the heartbeat writes both replicas'
    leases and every owner back once it answers."""
    a, b = pair
    await a.claim("call", "rtc_4")
    await b.claim("session", "sess_4")
    await asyncio.to_thread(redis_server.kill)
    try:
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable):
            await b.owner("call", "rtc_4")
        with pytest.raises(RegistryUnavailable):
            await a.live_replicas()
        await a.claim("call", "rtc_5")  # Redis is down: kept here, written later
        assert time.monotonic() - started < 5  # (timeouts of 0.25 s: nothing waits long)
        assert await a.owner("call", "rtc_5") == a.replica  # its own, without Redis
    finally:
        await asyncio.to_thread(redis_server.start)
    assert not await redis_server_keys(redis_server, "test-registry:*")  # empty, as after a restart

    async def back() -> bool:
        try:
            return (
                await b.owner("call", "rtc_4") == a.replica
                and await b.owner("call", "rtc_5") == a.replica
                and await a.owner("session", "sess_4") == b.replica
                and set(await a.live_replicas()) == {a.replica.id, b.replica.id}
                and await _leased(a, b.replica.id)
            )
        except RegistryUnavailable:
            return False

    await _until(back, "leases and owners written back after the restart")


async def test_flushed_redis_gets_them_back_too(pair: tuple[RedisRegistry, RedisRegistry]) -> None:
    """FLUSHALL while Redis stays up: the lease's renewal finds it gone and registers again."""
    a, b = pair
    await a.claim("call", "rtc_6")
    await a.client.flushall()
    assert await b.owner("call", "rtc_6") is None
    await _until(lambda: _owned_by(b, "rtc_6", a.replica), "A's owner key back after FLUSHALL", seconds=10)


async def test_an_owner_key_lost_under_a_live_lease_is_written_back(
    pair: tuple[RedisRegistry, RedisRegistry],
) -> None:
    """One owner key gone while the lease lives (deleted by hand, say): the next beat's renewal
    finds it missing and writes it back, with its TTL; a released one is not brought back."""
    a, b = pair
    await a.claim("call", "rtc_12")
    await a.claim("call", "rtc_13")
    await a.release("call", "rtc_13")
    await b.client.delete(a._owner_key("call", "rtc_12"))
    await _until(lambda: _owned_by(b, "rtc_12", a.replica), "the lost owner key written back", seconds=10)
    assert 0 < await b.client.pttl(a._owner_key("call", "rtc_12")) <= a.owner_ttl_ms
    assert await b.owner("call", "rtc_13") is None


async def _owned_by(registry: RedisRegistry, call_id: str, replica: Replica) -> bool:
    return await registry.owner("call", call_id) == replica


async def test_a_gateway_alone_holds_its_own() -> None:
    local = LocalRegistry()
    local.serving_at("http://127.0.0.1:8080")
    await local.start()
    await local.claim("call", "rtc_7")
    assert await local.owner("call", "rtc_7") == local.replica
    assert local.replica.url == "http://127.0.0.1:8080"
    assert await local.owner("call", "rtc_8") is None
    assert await local.live_replicas() == {local.replica.id: local.replica}
    await local.release("call", "rtc_7")
    assert await local.owner("call", "rtc_7") is None
    await local.close()


@pytest.mark.parametrize("section", [ClusterSettings, SharedLimitsSettings])
def test_a_redis_password_needs_its_url_and_no_password_in_it(section: type[BaseModel]) -> None:
    """`cluster` and `shared_limits` refuse `redis_password` alone or beside a URL's password, with
    the same words (one check serves both); a cluster also needs `hop_secret`."""
    extra = {"hop_secret": "s"} if section is ClusterSettings else {}
    alone = {"redis_password": "env:REDIS_PASSWORD", **extra}
    with pytest.raises(
        ValidationError, match="redis_password is the password of redis_url: give redis_url too"
    ):
        section.model_validate(alone)
    both = {"redis_url": "redis://:pw@127.0.0.1:6379/0", "redis_password": "pw", **extra}
    with pytest.raises(ValidationError, match="either in redis_url or in redis_password, not both"):
        section.model_validate(both)
    accepted = {"redis_url": "redis://127.0.0.1:6379/0", "redis_password": "pw", **extra}
    assert section.model_validate(accepted).model_dump()["redis_password"] == "pw"
    if section is ClusterSettings:
        with pytest.raises(ValidationError, match=r"a cluster \(redis_url\) needs hop_secret"):
            section.model_validate({"redis_url": "redis://127.0.0.1:6379/0"})


async def redis_server_keys(redis_server: RedisServer, pattern: str) -> list[str]:
    return [str(key) for key in await asyncio.to_thread(redis_server.client().keys, pattern)]


@pytest.mark.slow
async def test_a_gateway_registers_at_start_and_leaves_at_stop(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """`services.cluster` of a real gateway: its lease names the URL it listens on (port 0, so the
    one the OS picked) while it runs, and is gone at once when it stops."""
    prefix = "test-registry:gateway:"
    config = tmp_path / "cluster.json"
    cluster = {"redis_url": redis_server.url, "key_prefix": prefix, "hop_secret": "s3cret"}
    config.write_text(json.dumps({"cluster": cluster}))
    async with GatewayProcess(tmp_path / "data", "--config", str(config)) as gateway:
        client = redis_server.client()

        async def leased() -> bool:
            return bool(await asyncio.to_thread(client.keys, f"{prefix}replica:rep_*"))

        await _until(leased, "the gateway's lease in Redis")
        (lease,) = await asyncio.to_thread(client.keys, f"{prefix}replica:rep_*")
        assert await asyncio.to_thread(client.get, lease) == gateway.base_url
    assert not await redis_server_keys(redis_server, f"{prefix}replica:*")
