"""Graceful drain on SIGTERM (issue 18: a replica scaled down by Kubernetes). Real gateway
processes, the real `openai` SDK, aiortc, the shared OVOS stack answering: the draining gateway
says 503 on /readyz and to new sessions, calls and SIP INVITEs, keeps serving REST and its open
session (which still gets its answer), and exits 0 once that session closes; a session still being
admitted when the drain begins is served, not cut; a live WebRTC call holds the drain until it is
hung up; a session still open at `drain_seconds` is told why and
closed 1001; a second SIGTERM stops at once."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import websockets
from aiohttp import web
from openai.types.realtime import ResponseDoneEvent

from ovos_realtime_gateway.ovos.stack import OvosStack

from .gateway_process import GatewayProcess, HttpResult, configured_gateway, http
from .loopback_app import OPA_DECISION_PATH, serve_post
from .realtime_helpers import realtime_socket, say_and_ask
from .sip_peer import PhoneCall, SipPeer, header
from .test_sip_calls import free_udp_port
from .test_webrtc_calls import place_call
from .waiting import wait_until_async
from .webrtc_peer import CallPeer

pytestmark = pytest.mark.slow
HOURS = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|midnight|noon"


async def _readyz(gateway: GatewayProcess) -> HttpResult:
    return await asyncio.to_thread(http, "GET", f"{gateway.base_url}/readyz")


async def _until_ready(gateway: GatewayProcess, status: int, timeout: float) -> HttpResult:
    seen: list[HttpResult] = []

    async def answered() -> bool:
        seen.append(await _readyz(gateway))
        return seen[-1].status == status

    await wait_until_async(answered, f"/readyz {status}", timeout, every=0.2)
    return seen[-1]


def _refused_for_draining(status: int, headers: Any, body: bytes) -> None:
    """503, Retry-After, and OpenAI's error envelope naming the drain."""
    assert status == 503, (status, body)
    assert int(headers["retry-after"]) >= 1
    error = json.loads(body)["error"]
    assert error["code"] == "server_draining" and error["type"] == "server_error", error


async def _exit_code(gateway: GatewayProcess, timeout: float) -> int:
    assert gateway.proc is not None
    code: int = await asyncio.to_thread(gateway.proc.wait, timeout)
    return code


async def test_a_draining_gateway_takes_nothing_new_and_lets_the_open_session_finish(
    ovos: OvosStack, tmp_path: Path
) -> None:
    settings = {"messagebus_url": ovos.bus_url, "drain_seconds": 600}
    gateway, key = await asyncio.to_thread(configured_gateway, tmp_path, settings, "drain", "drain")
    async with gateway:
        client = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
        sdk = openai.OpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
        try:
            await _until_ready(gateway, 200, 240)  # OVOS's skills and the speech plugins
            assert gateway.proc is not None
            async with client.realtime.connect(model="gpt-realtime") as conn:
                await conn.recv()  # session.created
                await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
                await conn.recv()
                gateway.proc.send_signal(signal.SIGTERM)

                # the balancer is told at once: this replica takes no new sessions
                drain = (await _until_ready(gateway, 503, 30)).json()["checks"]["drain"]
                assert drain["ok"] is False and drain["live"] == 1, drain
                metrics = await asyncio.to_thread(http, "GET", f"{gateway.base_url}/metrics")
                assert re.search(rb"^ovos_realtime_draining 1\.0$", metrics.body, re.MULTILINE)

                # a new session: 503 before the upgrade, with Retry-After and OpenAI's envelope
                with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
                    async with client.realtime.connect(model="gpt-realtime"):
                        pass
                response = refused.value.response
                _refused_for_draining(response.status_code, response.headers, response.body or b"")

                # a new WebRTC call: the same (refused before its offer is read)
                with pytest.raises(openai.InternalServerError) as call_refused:
                    await asyncio.to_thread(sdk.realtime.calls.create, sdp="v=0\r\n")
                answer = call_refused.value.response
                _refused_for_draining(answer.status_code, answer.headers, answer.content)

                # REST that opens no session is still served (the next session goes elsewhere)
                secret = await client.realtime.client_secrets.create(
                    session={"type": "realtime", "model": "gpt-realtime"}
                )
                assert secret.value.startswith("ek_")

                # the open session goes on: it asks, and the skill answers
                await say_and_ask(conn, "what time is it")
                done = None
                async for event in conn:
                    if isinstance(event, ResponseDoneEvent):
                        done = event.response
                        break
                assert done is not None
                assert done.status == "completed", done
                text = " ".join(
                    part.text or ""
                    for item in done.output or []
                    for part in getattr(item, "content", None) or []
                )
                assert re.search(HOURS, text.lower()), text
                assert gateway.proc.poll() is None, "it stopped while a session was open"
            closed_at = time.monotonic()
            code = await _exit_code(gateway, 60)  # the session closed: nothing left to wait for
            exited_after = time.monotonic() - closed_at
        finally:
            await client.close()
            sdk.close()
    assert code == 0, gateway.logs()[-3000:]
    assert exited_after < 30, f"it waited {exited_after:.0f} s after the last session closed"
    assert "drained" in gateway.stdout_path.read_text()


async def test_a_session_still_open_at_the_deadline_is_told_and_closed_1001(tmp_path: Path) -> None:
    gateway, key = await asyncio.to_thread(
        configured_gateway, tmp_path, {"drain_seconds": 3}, "deadline", "deadline"
    )
    async with gateway:
        assert gateway.proc is not None
        async with realtime_socket(gateway.api_base, key) as conn:
            await conn.until("session.created")
            signalled = time.monotonic()
            gateway.proc.send_signal(signal.SIGTERM)
            told = await conn.until("error", timeout=60)
            waited = time.monotonic() - signalled
            assert told["error"]["code"] == "server_shutting_down", told
            assert "shutting down" in told["error"]["message"]
            closed = await asyncio.wait_for(conn.ws.receive(), 30)
            assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closed
            assert conn.ws.close_code == 1001
        code = await _exit_code(gateway, 60)
    assert waited >= 2.5, f"the session was ended {waited:.1f} s after SIGTERM, before drain_seconds"
    assert code == 0, gateway.logs()[-3000:]
    assert "drain over: ending 1 session(s) and call(s)" in gateway.stdout_path.read_text()


async def _held_policy_server(asked: asyncio.Event, release: asyncio.Event) -> tuple[web.AppRunner, str]:
    """A stand-in OPA server that allows everything but holds each `realtime.connect` decision
    until `release` (a deliberately injected delay: it keeps a session in admission)."""

    async def decide(request: web.Request) -> web.Response:
        if (await request.json())["input"].get("action") == "realtime.connect":
            asked.set()
            await release.wait()
        return web.json_response({"result": {"allow": True, "reason": "test"}})

    return await serve_post(OPA_DECISION_PATH, decide)


async def test_a_session_being_admitted_when_the_drain_begins_is_served_not_cut(tmp_path: Path) -> None:
    """SIGTERM while a session's handshake is in admission (upgraded, its policy decision still
    out) and nothing else is live: the drain counts it and waits; it opens and is served."""
    asked, release = asyncio.Event(), asyncio.Event()
    policy, opa_url = await _held_policy_server(asked, release)
    settings = {"opa_url": opa_url, "opa_timeout_seconds": 60, "drain_seconds": 600}
    try:
        gateway, key = await asyncio.to_thread(configured_gateway, tmp_path, settings, "drain", "admitting")
        async with gateway, aiohttp.ClientSession() as client:
            assert gateway.proc is not None
            url = gateway.api_base.replace("http://", "ws://") + "/realtime?model=gpt-realtime"
            async with client.ws_connect(url, headers={"Authorization": f"Bearer {key}"}) as ws:
                await asyncio.wait_for(asked.wait(), 60)  # upgraded; its connect decision is out
                gateway.proc.send_signal(signal.SIGTERM)

                async def draining() -> bool:
                    answer = await _readyz(gateway)
                    return answer.status == 503 and answer.json()["checks"]["drain"]["ok"] is False

                await wait_until_async(draining, "the drain to begin", 30, every=0.1)
                assert gateway.proc.poll() is None, "it stopped with a session in admission"
                release.set()
                created = json.loads((await ws.receive(timeout=30)).data)
                assert created["type"] == "session.created", created
                await ws.send_str(json.dumps({"type": "conversation.item.retrieve", "item_id": "nope"}))
                answer = json.loads((await ws.receive(timeout=30)).data)
                assert answer["type"] == "error" and answer["error"]["code"] == "item_not_found", answer
            code = await _exit_code(gateway, 60)  # the session closed: nothing left to wait for
        assert code == 0, gateway.logs()[-3000:]
    finally:
        release.set()
        await policy.cleanup()


async def test_sip_invites_get_503_and_a_second_sigterm_stops_at_once(tmp_path: Path) -> None:
    sip_port = await asyncio.to_thread(free_udp_port)
    settings = {"drain_seconds": 600, "sip": {"enabled": True, "port": sip_port, "project": "phones"}}
    gateway, key = await asyncio.to_thread(configured_gateway, tmp_path, settings, "phones", "second")
    async with gateway:
        assert gateway.proc is not None
        async with realtime_socket(gateway.api_base, key) as conn:
            await conn.until("session.created")
            gateway.proc.send_signal(signal.SIGTERM)
            await _until_ready(gateway, 503, 30)
            phone = await SipPeer.bind("127.0.0.1", sip_port)
            try:
                phone.send(PhoneCall(phone.address).invite())
                answer = await phone.response("1 INVITE")
            finally:
                phone.close()
            assert answer.startswith("SIP/2.0 503 "), answer
            assert int(header(answer, "Retry-After") or 0) >= 1, answer
            signalled = time.monotonic()
            gateway.proc.send_signal(signal.SIGTERM)  # again: no more waiting
            told = await conn.until("error", timeout=60)
            assert told["error"]["code"] == "server_shutting_down", told
        code = await _exit_code(gateway, 60)
    assert code == 0, gateway.logs()[-3000:]
    assert time.monotonic() - signalled < 60, "the second SIGTERM did not cut the 600 s drain short"


async def test_a_live_webrtc_call_holds_the_drain_and_is_still_controlled(tmp_path: Path) -> None:
    """A call is live work too: the draining gateway waits for it, its hangup (call control) is
    still served, and the gateway exits once it has ended."""
    gateway, key = await asyncio.to_thread(
        configured_gateway, tmp_path, {"drain_seconds": 600}, "callers", "call"
    )
    peer = CallPeer()
    async with gateway:
        assert gateway.proc is not None
        sdk = openai.OpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
        try:
            call_id = await place_call(sdk, peer)
            await peer.until("session.created")
            gateway.proc.send_signal(signal.SIGTERM)
            drain = (await _until_ready(gateway, 503, 30)).json()["checks"]["drain"]
            assert drain["live"] == 1, drain
            assert gateway.proc.poll() is None, "it stopped while a call was live"
            await asyncio.to_thread(sdk.realtime.calls.hangup, call_id)
            code = await _exit_code(gateway, 60)
        finally:
            sdk.close()
            await peer.close()
    assert code == 0, gateway.logs()[-3000:]
    assert "drained" in gateway.stdout_path.read_text()
