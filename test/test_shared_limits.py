"""Limits shared by replicas (`shared_limits.redis_url`): two real gateway processes on one real
redis-server and one data dir's keys. Requests per minute, concurrent sessions and failed
authentications are counted over both replicas (the sum, not per replica); a killed replica's
slots are freed when its lease expires; a frozen Redis does not hold a request up; a restarted
Redis is used again, with the live sessions' slots written back into it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from .conftest import SdkFactory
from .gateway_process import GatewayProcess, cli, create_key, http
from .realtime_helpers import EventReader, ws_url
from .redis_server import RedisServer

PREFIX = "test-limits:"
LEASE_S = 3  # the shortest lease: a killed replica's slots are freed 3 s after its last renewal
SETTINGS: dict[str, Any] = {
    "rate_limits": {"requests_per_minute": 1000, "concurrent_sessions": 100},
    "project_limits": {
        "alpha": {"requests_per_minute": 4},  # REST requests, counted over both replicas
        "beta": {"concurrent_sessions": 2},  # sessions, over both replicas
        "gamma": {"requests_per_minute": 2},  # requests once Redis is back
        "delta": {"concurrent_sessions": 1},  # a killed replica's slot
    },
    "auth_failures_per_minute": 3,
}
FAILING = "127.0.0.5"  # the address that fails authentication (the others use 127.0.0.1)


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[tuple[GatewayProcess, GatewayProcess, dict[str, str], Path]]:
    """Replicas A and B: one data dir (the keys both read), one Redis, a project key each."""
    root = tmp_path_factory.mktemp("replicas")
    data_dir = root / "data"
    keys = {project: create_key(data_dir, project) for project in ("alpha", "beta", "gamma", "delta")}
    config = _config(root, redis_server)
    with (
        GatewayProcess(data_dir, "--config", config, log_name="a") as a,
        GatewayProcess(data_dir, "--config", config, log_name="b") as b,
    ):
        yield a, b, keys, config_path(root)


def _config(root: Path, redis_server: RedisServer) -> str:
    shared = {"redis_url": redis_server.url, "key_prefix": PREFIX, "lease_seconds": LEASE_S}
    path = config_path(root)
    path.write_text(json.dumps({**SETTINGS, "shared_limits": shared}))
    return str(path)


def config_path(root: Path) -> Path:
    return root / "replicas.json"


def _models(gateway: GatewayProcess, key: str, source: str = "127.0.0.1") -> tuple[int, dict[str, str], str]:
    """GET /v1/models from the loopback address `source`: status, headers, body."""
    host, port = gateway.base_url.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), source_address=(source, 0), timeout=30)
    try:
        connection.request("GET", "/v1/models", headers={"Authorization": f"Bearer {key}"})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        connection.close()


@asynccontextmanager
async def _session(gateway: GatewayProcess, key: str) -> AsyncIterator[str]:
    """A realtime WebSocket session; yields its first event's type, or the error's code."""
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as http_session,
        http_session.ws_connect(ws_url(gateway.api_base, model="gpt-realtime"), headers=headers) as ws,
    ):
        first = await EventReader(ws).next()
        yield str(first["type"] if first["type"] != "error" else first["error"]["code"])


async def _opens_within(gateway: GatewayProcess, key: str, seconds: float) -> float:
    """Seconds until a session of `key` opens on `gateway` (retried: a freed slot is not at once)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        async with _session(gateway, key) as first:
            if first == "session.created":
                return time.monotonic() - started
        await asyncio.sleep(0.2)  # a pause between attempts
    raise AssertionError(f"no session opened on {gateway.base_url} within {seconds}s")


def _metric(gateway: GatewayProcess, sample: str) -> float:
    for line in http("GET", f"{gateway.base_url}/metrics").body.decode().splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _wait_for_leases(redis_server: RedisServer, count: int, seconds: float = 30.0) -> None:
    """Until `count` replicas hold a lease in Redis (they renew it every LEASE_S / 3)."""
    client = redis_server.client()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if len(await asyncio.to_thread(client.keys, f"{PREFIX}replica:*")) >= count:
                return
        except Exception:  # the server is starting
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} replica leases in Redis after {seconds}s")


@pytest.mark.slow
def test_a_project_limit_is_the_sum_over_replicas(cluster: Any, make_sdk: SdkFactory) -> None:
    """alpha may make 4 requests a minute: 2 on A and 2 on B use them up, and the 5th is a 429 with
    OpenAI's headers on either replica (per replica, each would still have 2 left)."""
    a, b, keys, _ = cluster
    statuses = []
    for gateway in (a, b, a, b):
        status, headers, _ = _models(gateway, keys["alpha"])
        statuses.append((status, int(headers["x-ratelimit-remaining-requests"])))
        assert headers["x-ratelimit-limit-requests"] == "4"
    assert statuses == [(200, 3), (200, 2), (200, 1), (200, 0)]
    for gateway in (a, b):
        status, headers, body = _models(gateway, keys["alpha"])
        assert status == 429, body
        error = json.loads(body)["error"]
        assert error["code"] == "rate_limit_exceeded"
        assert "on project: Limit 4" in error["message"]
        assert int(headers["retry-after"]) >= 1 and int(headers["retry-after-ms"]) > 0
    with pytest.raises(openai.RateLimitError):
        make_sdk(b.api_base, keys["alpha"]).models.list()
    assert _metric(b, 'ovos_realtime_shared_limits_fallbacks_total{limit="requests"}') == 0.0


@pytest.mark.slow
async def test_concurrent_sessions_are_summed_over_replicas(cluster: Any) -> None:
    """beta may hold 2 sessions: one on A and one on B fill it, a third is refused on both, and
    closing one frees a slot for the other replica."""
    a, b, keys, _ = cluster
    async with _session(a, keys["beta"]) as on_a:
        assert on_a == "session.created"
        async with _session(b, keys["beta"]) as on_b:
            assert on_b == "session.created"
            for gateway in (a, b):
                async with _session(gateway, keys["beta"]) as third:
                    assert third == "session_limit_reached"
    await _opens_within(b, keys["beta"], 20.0)


@pytest.mark.slow
def test_failed_authentications_on_one_replica_throttle_the_address_on_the_other(cluster: Any) -> None:
    a, b, keys, _ = cluster
    for _ in range(3):
        assert _models(a, "sk-ovos-wrong", FAILING)[0] == 401
    status, headers, body = _models(b, keys["gamma"], FAILING)
    assert status == 429, body
    assert f"failed authentications from {FAILING}" in json.loads(body)["error"]["message"]
    assert int(headers["retry-after"]) >= 1
    assert _models(b, keys["gamma"])[0] == 200  # another address is not held off
    assert _models(b, keys["gamma"])[0] == 200  # (gamma's two requests: test_redis_restarted waits a minute)


@pytest.mark.slow
async def test_a_killed_replicas_slots_expire_with_its_lease(
    cluster: Any, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Replica C holds delta's only slot and is SIGKILLed: A refuses delta until C's lease runs
    out, then opens it — within the lease, not never."""
    a, _, keys, config = cluster
    c = GatewayProcess(a.data_dir, "--config", str(config), log_name="c")
    async with c:
        stack = AsyncExitStack()
        assert await stack.enter_async_context(_session(c, keys["delta"])) == "session.created"
        async with _session(a, keys["delta"]) as refused:
            assert refused == "session_limit_reached"
        assert c.proc is not None
        c.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(c.proc.wait, 10)
        killed_at = time.monotonic()
        waited = await _opens_within(a, keys["delta"], 30.0)
        assert time.monotonic() - killed_at <= LEASE_S + 20  # bounded by the lease (and a slow machine)
        assert waited > 0
        with contextlib.suppress(aiohttp.ClientError, ConnectionError):
            await stack.aclose()  # its server was killed


@pytest.mark.slow
async def test_redis_frozen_or_restarted(cluster: Any, redis_server: RedisServer) -> None:
    """A frozen Redis holds no request up (the replica limits on its own and counts it); once
    Redis is restarted (empty), the replicas use it again: the live session's slot is written back
    and the request limits are shared again."""
    a, b, keys, _ = cluster
    async with _session(a, keys["beta"]) as held:  # one of beta's 2 slots, across the restart
        assert held == "session.created"
        await asyncio.to_thread(redis_server.freeze)
        try:
            started = time.monotonic()
            assert (await asyncio.to_thread(_models, a, keys["delta"], "127.0.0.7"))[0] == 200
            assert time.monotonic() - started < 5.0
        finally:
            await asyncio.to_thread(redis_server.thaw)
        fallbacks = 'ovos_realtime_shared_limits_fallbacks_total{limit="requests"}'
        assert await asyncio.to_thread(_metric, a, fallbacks) >= 1.0
        await asyncio.to_thread(redis_server.kill)
        assert (await asyncio.to_thread(_models, b, keys["delta"]))[
            0
        ] == 200  # Redis down: served, limited per replica
        await asyncio.to_thread(redis_server.start)
        await _wait_for_leases(redis_server, 2)
        # the heartbeat wrote A's live session back: beta has one slot left, over both replicas
        deadline = time.monotonic() + 30
        while not await asyncio.to_thread(
            redis_server.client().keys, f"{PREFIX}slots:p:*"
        ):  # beta's: the only live session
            assert time.monotonic() < deadline, "A's live slot was not written back to Redis"
            await asyncio.sleep(0.1)
        async with _session(b, keys["beta"]) as second:
            assert second == "session.created"
            async with _session(b, keys["beta"]) as third:
                assert third == "session_limit_reached"
    # gamma (2 a minute) used 2 on B before the restart; the restarted Redis starts it full again
    statuses = [(await asyncio.to_thread(_models, gateway, keys["gamma"]))[0] for gateway in (a, b, a)]
    assert statuses == [200, 200, 429]


def test_a_bad_shared_limits_url_is_a_clear_error_at_start(tmp_path: Path) -> None:
    config = tmp_path / "settings.json"
    config.write_text('{"shared_limits": {"redis_url": "redis://user:hunter2@127.0.0.1:port/0"}}')
    done = cli("serve", "--port", "0", "--config", str(config), data_dir=tmp_path / "data", check=False)
    assert done.returncode == 2
    assert "invalid setting 'shared_limits.redis_url'" in done.stderr
    assert "is not a Redis URL: the port is not a number" in done.stderr
    assert "hunter2" not in done.stderr
    config.write_text('{"shared_limits": {"redis_password": "env:REDIS_PASSWORD"}}')
    done = cli("serve", "--port", "0", "--config", str(config), data_dir=tmp_path / "data", check=False)
    assert done.returncode == 2
    assert "redis_password is the password of redis_url: give redis_url too" in done.stderr


async def test_the_redis_password_setting_is_used_and_a_refreshed_one_on_new_connections(
    redis_server: RedisServer,
) -> None:
    """`shared_limits.redis_password` (here a literal; `env:`/`file:`/`vault:` resolve to the same
    SecretValue) authenticates to a Redis with `requirepass`; a wrong one means the replica limits
    on its own (counted), and a refreshed value is what the next connection uses."""
    from ovos_realtime_gateway.security.ratelimit import AuthFailureThrottle, RateLimiter, SessionSlots
    from ovos_realtime_gateway.security.secret_refs import Reference, SecretValue
    from ovos_realtime_gateway.security.shared_limits import SharedLimits
    from ovos_realtime_gateway.settings import SharedLimitsSettings

    admin = redis_server.client()
    await asyncio.to_thread(admin.config_set, "requirepass", "first-secret")
    try:
        authed = redis_server.client()
        authed.connection_pool.connection_kwargs["password"] = "first-secret"
        password = SecretValue("shared_limits.redis_password", Reference("literal"), "first-secret")
        fallbacks: list[str] = []
        settings = SharedLimitsSettings(redis_url=redis_server.url, key_prefix="pw:", redis_password="x")
        shared = SharedLimits(
            settings,
            password,
            RateLimiter(lambda _: 10, lambda _: 10),
            SessionSlots(lambda _: 1, lambda _: 1),
            AuthFailureThrottle(lambda: 3),
            fallbacks.append,
        )
        assert (await shared.limiter.check("p1", "k1")).remaining == 9
        assert await asyncio.to_thread(authed.exists, "pw:rpm:p:p1") and fallbacks == []
        await asyncio.to_thread(authed.config_set, "requirepass", "second-secret")
        authed.connection_pool.connection_kwargs["password"] = "second-secret"
        await shared.redis.client.connection_pool.disconnect()  # the next check connects anew
        assert (await shared.limiter.check("p1", "k1")).allowed  # decided here: wrong password
        assert fallbacks == ["requests"]
        password.update("second-secret")
        shared.redis._down_until = 0.0  # (not waiting out the pause after the failure)
        assert (await shared.limiter.check("p1", "k1")).remaining == 8  # shared again: 2 taken in Redis
        assert fallbacks == ["requests"]
        await shared.close()
    finally:
        cleanup = redis_server.client()
        for candidate in ("second-secret", "first-secret"):
            cleanup.connection_pool.connection_kwargs["password"] = candidate
            try:
                await asyncio.to_thread(cleanup.config_set, "requirepass", "")
                break
            except Exception:
                await asyncio.to_thread(cleanup.connection_pool.disconnect)
