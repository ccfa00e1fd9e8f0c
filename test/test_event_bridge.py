"""The Redis event bridge with a real redis-server and a real gateway: session, response and
policy events reach the stream (ids, timings, outcomes, no typed text or credentials); a frozen
or killed Redis never holds up a session, the drops are counted in /metrics, and events flow
again once Redis is back."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ovos_realtime_gateway.engine.response import ResponseRun
from ovos_realtime_gateway.engine.session import SessionHooks
from ovos_realtime_gateway.events import EventBridge, EventExporter
from ovos_realtime_gateway.events.redis_sink import RedisStreamSink
from ovos_realtime_gateway.observability.metrics import GatewayMetrics

from .conftest import SdkFactory
from .engine_harness import Harness, ScriptedResponder, user_text
from .gateway_process import GatewayProcess, cli, configured_gateway, http
from .realtime_helpers import EventReader, realtime_socket
from .redis_server import RedisServer
from .test_webrtc_calls import place_call
from .webrtc_peer import CallPeer

STREAM = "test:events"
SECRET_WORDS = "the parrot's code is 4711"
ANSWER_DEADLINE_S = 10.0  # a response.done that takes longer means the session was held up


@pytest.fixture(scope="module")
def bridged(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway publishing to `redis_server` (a small queue, so a stuck Redis fills it)."""
    settings = {"event_bridge": {"redis_url": redis_server.url, "stream": STREAM, "queue_size": 8}}
    gateway, key = configured_gateway(tmp_path_factory.mktemp("bridged"), settings, "bridge", "gw")
    with gateway:
        yield gateway, key


def _entries(server: RedisServer) -> list[dict[str, str]]:
    with server.client() as client:
        return [fields for _, fields in client.xrange(STREAM)]


def _wait_for_entry(server: RedisServer, timeout: float = 30.0, **match: str) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        for fields in _entries(server):
            if all(fields.get(k) == v for k, v in match.items()):
                return fields
        if time.monotonic() > deadline:
            raise AssertionError(f"no stream entry with {match} within {timeout}s: {_entries(server)}")
        time.sleep(0.1)


def _metric(gateway: GatewayProcess, name: str, **labels: str) -> float:
    text = http("GET", f"{gateway.base_url}/metrics").body.decode()
    shown = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{name}\{{{re.escape(shown)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def _wait_for_metric(gateway: GatewayProcess, name: str, above: float, **labels: str) -> float:
    deadline = time.monotonic() + 30.0
    while (value := await asyncio.to_thread(_metric, gateway, name, **labels)) <= above:
        assert time.monotonic() < deadline, f"{name}{labels} stayed at {value}"
        await asyncio.sleep(0.1)
    return value


async def _turn(ws: EventReader, text: str = SECRET_WORDS) -> dict[str, Any]:
    """A typed turn and its response (no messagebus: it fails with `responder_unavailable`),
    which must come back within ANSWER_DEADLINE_S whatever Redis does."""
    started = time.monotonic()
    content = [{"type": "input_text", "text": text}]
    await ws.send(
        {"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": content}}
    )
    await ws.send({"type": "response.create"})
    done = await ws.until("response.done", timeout=ANSWER_DEADLINE_S)
    assert time.monotonic() - started < ANSWER_DEADLINE_S
    return dict(done["response"])


@pytest.mark.slow
async def test_session_response_and_policy_events_reach_the_stream(
    bridged: tuple[GatewayProcess, str], redis_server: RedisServer, make_sdk: SdkFactory
) -> None:
    gateway, key = bridged
    secret = (await asyncio.to_thread(make_sdk(gateway.api_base, key).realtime.client_secrets.create)).value
    denied = await asyncio.to_thread(http, "GET", f"{gateway.api_base}/models", key=secret)
    assert denied.status == 403  # an ek_ secret may not list models: a policy denial
    async with realtime_socket(gateway.api_base, key) as ws:
        session_id = (await ws.until("session.created"))["session"]["id"]
        response = await _turn(ws)
        assert response["status"] == "failed"

    closed = await asyncio.to_thread(
        _wait_for_entry, redis_server, kind="session.closed", session_id=session_id
    )
    opened = await asyncio.to_thread(
        _wait_for_entry, redis_server, kind="session.opened", session_id=session_id
    )
    done = await asyncio.to_thread(
        _wait_for_entry, redis_server, kind="response.done", response_id=response["id"]
    )
    denial = await asyncio.to_thread(_wait_for_entry, redis_server, kind="policy.decision", outcome="denied")
    allowed = await asyncio.to_thread(
        _wait_for_entry, redis_server, kind="policy.decision", action="client_secrets.create"
    )

    project = opened["project"]
    assert project.startswith("proj_")  # the key's project id, on every event
    assert {e["project"] for e in (closed, done, denial, allowed)} == {project}
    assert opened["model"] == "gpt-realtime" and opened["transport"] == "websocket"
    assert closed["reason"] == "closed" and float(closed["duration_s"]) > 0
    assert done["session_id"] == session_id and done["outcome"] == "failed"
    assert done["reason"] == "responder_unavailable" and float(done["latency_s"]) < ANSWER_DEADLINE_S
    assert denial["action"] == "models.list" and denial["reason"]
    assert allowed["outcome"] == "allowed"
    # ids, timings and outcomes only: never what was typed, nor a credential
    everything = repr(await asyncio.to_thread(_entries, redis_server))
    for private in ("4711", "parrot", key, secret):
        assert private not in everything
    assert (
        await asyncio.to_thread(
            _metric, gateway, "ovos_realtime_events_published_total", kind="response.done"
        )
    ) >= 1


@pytest.mark.slow
async def test_a_webrtc_call_and_its_session_are_events(
    bridged: tuple[GatewayProcess, str], redis_server: RedisServer, make_sdk: SdkFactory
) -> None:
    gateway, key = bridged
    sdk = make_sdk(gateway.api_base, key)
    peer = CallPeer()
    try:
        call_id = await place_call(sdk, peer)
        session_id = (await peer.until("session.created"))["session"]["id"]
        await asyncio.to_thread(sdk.realtime.calls.hangup, call_id)
        ended = await asyncio.to_thread(_wait_for_entry, redis_server, kind="call.ended", call_id=call_id)
    finally:
        await peer.close()
    started = await asyncio.to_thread(_wait_for_entry, redis_server, kind="call.started", call_id=call_id)
    opened = await asyncio.to_thread(
        _wait_for_entry, redis_server, kind="session.opened", session_id=session_id
    )
    closed = await asyncio.to_thread(
        _wait_for_entry, redis_server, kind="session.closed", session_id=session_id
    )
    assert started["transport"] == opened["transport"] == ended["transport"] == "webrtc"
    assert ended["session_id"] == session_id and ended["reason"] == closed["reason"] == "hangup"
    assert float(ended["duration_s"]) > 0 and float(closed["duration_s"]) > 0


@pytest.mark.slow
async def test_a_frozen_redis_holds_up_no_session_and_drops_are_counted(
    bridged: tuple[GatewayProcess, str], redis_server: RedisServer
) -> None:
    gateway, key = bridged
    full = await asyncio.to_thread(
        _metric, gateway, "ovos_realtime_events_dropped_total", reason="queue_full"
    )
    down = await asyncio.to_thread(_metric, gateway, "ovos_realtime_events_dropped_total", reason="sink_down")
    async with realtime_socket(gateway.api_base, key) as ws:
        await ws.until("session.created")
        redis_server.freeze()  # SIGSTOP: connections stay open, nothing answers
        try:
            for _ in range(12):  # more events than the queue (8) holds while a send hangs
                await _turn(ws, "hello")
            await _wait_for_metric(gateway, "ovos_realtime_events_dropped_total", full, reason="queue_full")
            await _wait_for_metric(gateway, "ovos_realtime_events_dropped_total", down, reason="sink_down")
        finally:
            redis_server.thaw()
        # Redis answers again: after the exporter's backoff, a new turn's event is in the stream
        await _events_flow_again(ws, redis_server)


@pytest.mark.slow
async def test_a_killed_redis_holds_up_no_session_and_events_flow_once_it_is_back(
    bridged: tuple[GatewayProcess, str], redis_server: RedisServer
) -> None:
    gateway, key = bridged
    down = await asyncio.to_thread(_metric, gateway, "ovos_realtime_events_dropped_total", reason="sink_down")
    async with realtime_socket(gateway.api_base, key) as ws:
        await ws.until("session.created")
        await asyncio.to_thread(redis_server.kill)
        try:
            lost = await _turn(ws, "hello")
            await _wait_for_metric(gateway, "ovos_realtime_events_dropped_total", down, reason="sink_down")
            for _ in range(3):
                await _turn(ws, "hello")  # still answered at once
        finally:
            await asyncio.to_thread(redis_server.start)  # the same port, an empty Redis (no persistence)
        await _events_flow_again(ws, redis_server)
    entries = await asyncio.to_thread(_entries, redis_server)
    assert not any(e.get("response_id") == lost["id"] for e in entries)


async def _events_flow_again(ws: EventReader, server: RedisServer, timeout: float = 30.0) -> None:
    """Turn after turn until one's `response.done` event is in the stream (the exporter retries
    after its backoff, at most 5 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await _turn(ws, "hello")
        if await asyncio.to_thread(_found, server, response["id"]):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"no response.done reached the stream within {timeout}s of Redis coming back")


def _found(server: RedisServer, response_id: str) -> bool:
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        if any(e.get("response_id") == response_id for e in _entries(server)):
            return True
        time.sleep(0.1)
    return False


class _BridgeHooks(SessionHooks):
    def __init__(self, bridge: EventBridge) -> None:
        self.bridge = bridge

    def response_finished(self, run: ResponseRun) -> None:
        self.bridge.response_finished(run)


async def test_include_text_adds_what_was_typed_and_answered(redis_server: RedisServer) -> None:
    """Only an operator's `include_text` puts the turn's text in the stream (the session engine
    in-process, the scripted responder standing in for OVOS; the Redis sink and server real)."""
    stream = "test:with-text"
    sink = RedisStreamSink(redis_server.url, stream, 1000)
    bridge = EventBridge(EventExporter(sink, GatewayMetrics(), 100), include_text=True)
    bridge.start()
    harness = Harness(ScriptedResponder("It is ten past four."))
    harness.session.hooks = _BridgeHooks(bridge)
    await harness.send(user_text("what time is it"))
    await harness.send({"type": "response.create"})
    await harness.settle()
    await bridge.stop()  # what is queued goes out first

    def stream_entries() -> list[tuple[str, dict[str, str]]]:
        with redis_server.client() as client:
            return list(client.xrange(stream))

    [(_, fields)] = await asyncio.to_thread(stream_entries)
    assert fields["kind"] == "response.done" and fields["outcome"] == "completed"
    assert fields["input_text"] == "what time is it"
    assert fields["output_text"].strip() == "It is ten past four."


async def test_stopping_with_a_frozen_redis_is_bounded(redis_server: RedisServer) -> None:
    """Shutdown gives queued events 2 s, then drops them (counted) and closes: a frozen Redis
    cannot hold the gateway's stop."""
    metrics = GatewayMetrics()
    bridge = EventBridge(EventExporter(RedisStreamSink(redis_server.url, "test:frozen", 1000), metrics, 100))
    bridge.start()
    redis_server.freeze()
    try:
        for n in range(5):
            bridge.policy_decision("models.list", True, "", f"proj_{n}")
        started = time.monotonic()
        await asyncio.wait_for(bridge.stop(), 15.0)
        assert time.monotonic() - started < 10.0
    finally:
        redis_server.thaw()
    dropped = metrics.registry.get_sample_value("ovos_realtime_events_dropped_total", {"reason": "sink_down"})
    assert dropped == 5


def test_a_bad_redis_url_is_a_clear_error_at_start(tmp_path: Path) -> None:
    config = tmp_path / "settings.json"
    config.write_text('{"event_bridge": {"redis_url": "http://user:hunter2@127.0.0.1:6379"}}')
    done = cli("serve", "--port", "0", "--config", str(config), data_dir=tmp_path / "data", check=False)
    assert done.returncode == 2
    assert "invalid setting 'event_bridge.redis_url'" in done.stderr
    assert "is not a Redis URL: the scheme must be redis://, rediss:// or unix://" in done.stderr
    assert "hunter2" not in done.stderr
