"""News every replica must hear at once (issue 18): replicas A, B and C (and D) of one gateway on
one throwaway PostgreSQL and one redis-server. A key revoked through C's config is refused on A's
REST and ends A's open WebSocket session (the real `openai` SDK) and B's session on an `ek_` it
minted within 1 s of the CLI's exit; a policy applied once decides on every replica within 1 s.
A, B and C check the store only every 60 s, so only the news can do it in time. With Redis
stopped, D (the default 2 s check) still ends a revoked key's session; once Redis is back, every
replica subscribes again and catches up on what it missed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import websockets

from .gateway_process import GatewayProcess, cli, create_key, http
from .postgres_server import PostgresServer
from .redis_server import RedisServer
from .test_policy_updates import NO_MODELS, NO_MODELS_TESTS

PREFIX = "test-news:"
CHANNEL = f"{PREFIX}news"
WITHIN_S = 1.0  # the acceptance bound, measured from the CLI's exit
DEADLINE_S = 30.0  # how long a test waits for what must happen at all (a loaded machine)
STARTS_WITHIN_S = 120.0  # four gateways starting side by side on a shared 2-core machine
pytestmark = pytest.mark.slow


@dataclass
class Replicas:
    gateways: dict[str, GatewayProcess]
    configs: dict[str, Path]
    root: Path


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer, redis_server: RedisServer
) -> Iterator[Replicas]:
    """A, B, C (store checked every 60 s) and D (the default 2 s), each with its own config."""
    root = tmp_path_factory.mktemp("news")
    store_url = postgres.create_database()
    cluster = {"redis_url": redis_server.url, "key_prefix": PREFIX, "hop_secret": "shared-hop-secret"}
    configs: dict[str, Path] = {}
    for name in "abcd":
        settings: dict[str, Any] = {"store_url": store_url, "cluster": cluster}
        if name != "d":
            settings["revocation_check_seconds"] = 60
        configs[name] = root / f"{name}.json"
        configs[name].write_text(json.dumps(settings))
    gateways = {
        name: GatewayProcess(root / f"{name}-data", "--config", str(configs[name]), log_name=name)
        for name in "abcd"
    }
    with ThreadPoolExecutor(len(gateways)) as pool:  # started and stopped side by side
        try:
            list(pool.map(lambda gateway: gateway.start(timeout=STARTS_WITHIN_S), gateways.values()))
            _wait_for_subscribers(redis_server, 4)
            yield Replicas(gateways, configs, root)
        finally:
            list(pool.map(GatewayProcess.stop, gateways.values()))


def _wait_for_subscribers(redis_server: RedisServer, count: int) -> None:
    deadline = time.monotonic() + DEADLINE_S * 2
    while time.monotonic() < deadline:
        try:
            if redis_server.client().pubsub_numsub(CHANNEL)[0][1] >= count:
                return
        except Exception:  # the server is starting
            pass
        time.sleep(0.05)  # a pause between polls of Redis (in a worker thread or a sync fixture)
    raise AssertionError(f"fewer than {count} replicas subscribed to {CHANNEL}")


def _key(replicas: Replicas, project: str) -> str:
    return create_key(None, project, replicas.configs["c"])


def _key_id(key: str) -> str:
    return "key_" + key.split("-")[2]


def _revoke_through_c(replicas: Replicas, key: str) -> tuple[float, str]:
    """`keys revoke` with C's config; the moment it exited, and what it said on stderr."""
    done = cli("keys", "revoke", _key_id(key), "--config", str(replicas.configs["c"]))
    return time.monotonic(), done.stderr


def _models_status(gateway: GatewayProcess, key: str) -> int:
    return http("GET", f"{gateway.api_base}/models", key=key).status


async def _open(gateway: GatewayProcess, key: str) -> Any:
    """An open realtime session (the SDK's connection manager, entered) past `session.created`."""
    sdk = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
    manager = sdk.realtime.connect(model="gpt-realtime")
    connection = await manager.__aenter__()
    first = await asyncio.wait_for(connection.recv(), DEADLINE_S)
    assert first.type == "session.created", first
    return manager, connection


async def _ended_revoked(connection: Any) -> float:
    """Reads until the revoked error and the close (3000); the moment it closed."""
    error = await asyncio.wait_for(connection.recv(), DEADLINE_S * 3)
    assert error.type == "error" and error.error.code == "invalid_api_key", error
    assert "revoked" in error.error.message
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        await asyncio.wait_for(connection.recv(), DEADLINE_S)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 3000
    return time.monotonic()


async def _close(manager: Any) -> None:
    try:
        await manager.__aexit__(None, None, None)
    except websockets.exceptions.ConnectionClosed:
        pass


async def test_a_key_revoked_through_c_is_refused_on_a_within_a_second(replicas: Replicas) -> None:
    a, b = replicas.gateways["a"], replicas.gateways["b"]
    key = await asyncio.to_thread(_key, replicas, "revoked")
    sdk = openai.OpenAI(base_url=a.api_base, api_key=key, max_retries=0)
    ek = (await asyncio.to_thread(sdk.realtime.client_secrets.create)).value
    on_a, on_b = await _open(a, key), await _open(b, ek)
    try:
        ends = [asyncio.ensure_future(_ended_revoked(conn)) for _, conn in (on_a, on_b)]
        exited, said = await asyncio.to_thread(_revoke_through_c, replicas, key)
        assert await asyncio.to_thread(_models_status, a, key) == 401
        refused = time.monotonic() - exited
        closed = [when - exited for when in await asyncio.gather(*ends)]
        assert "told 4 replica(s) at once" in said
        assert refused < WITHIN_S, f"A's REST refused the key {refused:.2f}s after the CLI exited"
        assert max(closed) < WITHIN_S, f"the sessions on A and B closed {closed} s after the CLI exited"
    finally:
        for manager, _ in (on_a, on_b):
            await _close(manager)


async def test_a_policy_applied_once_decides_on_every_replica_within_a_second(
    replicas: Replicas, tmp_path: Path
) -> None:
    key = await asyncio.to_thread(_key, replicas, "policy")
    for gateway in replicas.gateways.values():
        assert await asyncio.to_thread(_models_status, gateway, key) == 200
    policy = tmp_path / "no_models.rego"
    policy.write_text(NO_MODELS)
    (tmp_path / "no_models_test.rego").write_text(NO_MODELS_TESTS)
    config = str(replicas.configs["c"])
    try:
        done = await asyncio.to_thread(cli, "policy", "apply", str(policy), "--config", config)
        exited = time.monotonic()
        assert "told 4 replica(s) at once" in done.stdout
        decided = await asyncio.gather(
            *(_until_status(g, key, 403, exited) for g in replicas.gateways.values())
        )
        assert max(decided) < WITHIN_S, f"the replicas denied models.list {decided} s after the CLI exited"
        body = await asyncio.to_thread(http, "GET", f"{replicas.gateways['b'].api_base}/models", key=key)
        assert body.json()["error"]["message"].endswith("Model listing is closed.")
    finally:
        await asyncio.to_thread(cli, "policy", "clear", "--config", config)
    exited = time.monotonic()
    allowed = await asyncio.gather(*(_until_status(g, key, 200, exited) for g in replicas.gateways.values()))
    assert max(allowed) < WITHIN_S, "cleared: each replica's own policy_file (the shipped one) again"


async def _until_status(gateway: GatewayProcess, key: str, status: int, since: float) -> float:
    """Seconds from `since` until GET /v1/models answers `status` on `gateway`."""
    while time.monotonic() - since < DEADLINE_S:
        if await asyncio.to_thread(_models_status, gateway, key) == status:
            return time.monotonic() - since
    raise AssertionError(f"{gateway.base_url} never answered {status}")


async def test_with_redis_stopped_the_poll_revokes_and_a_restarted_redis_is_listened_to_again(
    replicas: Replicas, redis_server: RedisServer
) -> None:
    a, b, d = replicas.gateways["a"], replicas.gateways["b"], replicas.gateways["d"]
    made = [asyncio.to_thread(_key, replicas, project) for project in ("d", "a", "b")]
    on_d_key, on_a_key, on_b_key = await asyncio.gather(*made)
    on_d, on_a = await _open(d, on_d_key), await _open(a, on_a_key)
    try:
        await asyncio.to_thread(redis_server.kill)
        d_ends = asyncio.ensure_future(_ended_revoked(on_d[1]))
        a_ends = asyncio.ensure_future(_ended_revoked(on_a[1]))
        _, said = await asyncio.to_thread(_revoke_through_c, replicas, on_d_key)
        assert "were not told at once" in said and "revocation_check_seconds" in said
        await d_ends  # D's own check of the store (every 2 s) ended it, with no news
        _, said = await asyncio.to_thread(_revoke_through_c, replicas, on_a_key)
        await asyncio.to_thread(redis_server.start)
        restarted = time.monotonic()
        # A (checking the store every 60 s) catches up as soon as it has subscribed again (it
        # retries Redis every 2 s at most); its own check could only do it if it fell due here
        closed = await a_ends
        assert closed - restarted < 10, "caught up on subscribing again, not by its 60 s check"
    finally:
        for manager, _ in (on_d, on_a):
            await _close(manager)
    await asyncio.to_thread(_wait_for_subscribers, redis_server, 4)
    manager, on_b = await _open(b, on_b_key)
    try:
        ends = asyncio.ensure_future(_ended_revoked(on_b))
        exited, said = await asyncio.to_thread(_revoke_through_c, replicas, on_b_key)
        assert "told 4 replica(s) at once" in said
        assert await ends - exited < WITHIN_S, "news reaches the replicas again after the restart"
    finally:
        await _close(manager)
