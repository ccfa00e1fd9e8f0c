"""WebRTC calls (issue 5): a real aiortc peer calls the gateway the browser way — offer to
`/v1/realtime/calls` through the real `openai` SDK, the answer back, `oai-events` on the data
channel, speech on the audio track — and the gateway's own engine, VAD and STT answer.

Answers from skills over a call are tested with the OVOS stack in test_ovos_answers.py.
Long because its tests share one gateway and its aiortc peer helpers; split, each part would
start its own.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from .conftest import SdkFactory
from .gateway_process import GatewayProcess, cli, configured_gateway, http
from .realtime_helpers import EventReader, ws_url
from .speech import user_speech_pcm
from .waiting import wait_until, wait_until_async
from .webrtc_peer import CallPeer

SDP, JSON = "application/sdp", "application/json"
CALL_LOCATION = re.compile(r"^/v1/realtime/calls/(rtc_[0-9a-f]{32})$")


def metric(gateway: GatewayProcess, name: str) -> float:
    text = http("GET", f"{gateway.base_url}/metrics").body.decode()
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def wait_for_metric(gateway: GatewayProcess, name: str, value: float, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (seen := (await asyncio.to_thread(metric, gateway, name))) != value:
        assert time.monotonic() < deadline, f"{name} stayed {seen}, expected {value}"
        await asyncio.sleep(0.1)


async def place_call(sdk: openai.OpenAI, peer: CallPeer, session: Any = None) -> str:
    """The SDK's `calls.create` with the peer's offer; the peer takes the answer; the call id."""
    offer = await peer.offer()
    kwargs: dict[str, Any] = {"sdp": offer}
    if session is not None:
        kwargs["session"] = session
    raw = await asyncio.to_thread(sdk.realtime.calls.with_raw_response.create, **kwargs)
    assert raw.status_code == 201
    assert raw.headers["content-type"].startswith("application/sdp")
    location = CALL_LOCATION.match(raw.headers["location"])
    assert location, raw.headers["location"]
    answer = raw.http_response.text
    assert answer.startswith("v=0")
    await peer.accept(answer)
    return location.group(1)


@pytest.fixture
async def peer() -> AsyncIterator[CallPeer]:
    made = CallPeer()
    yield made
    await made.close()


async def test_a_call_the_browser_way_talks_and_hangs_up(
    gateway: GatewayProcess, alpha_key: str, make_sdk: SdkFactory, peer: CallPeer
) -> None:
    sdk = make_sdk(gateway.api_base, alpha_key)
    session = {
        "type": "realtime",
        "instructions": "Answer like a butler.",
        "audio": {"input": {"transcription": {"model": "whisper-1"}}},
    }
    call_id = await place_call(sdk, peer, session)

    created = await peer.until("session.created")
    assert created["session"]["instructions"] == "Answer like a butler."
    peer.send({"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief."}})
    updated = await peer.until("session.updated")
    assert updated["session"]["instructions"] == "Be brief."

    peer.microphone.say(user_speech_pcm("what time is it", 48_000, tail_ms=1000))
    started = await peer.until("input_audio_buffer.speech_started", 15)
    stopped = await peer.until("input_audio_buffer.speech_stopped", 15)
    assert stopped["item_id"] == started["item_id"]
    committed = await peer.until("input_audio_buffer.committed")
    assert committed["item_id"] == started["item_id"]
    transcript = await peer.until("conversation.item.input_audio_transcription.completed", 30)
    assert "time" in transcript["transcript"].lower()
    done = await peer.until("response.done", 30)  # no OVOS behind this gateway: failed, clearly
    assert done["response"]["status"] == "failed"
    assert done["response"]["status_details"]["error"]["code"] == "responder_unavailable"
    assert not any(t == "response.output_audio.delta" for t in peer.types()), "audio goes over RTP"
    assert (await asyncio.to_thread(metric, gateway, "ovos_realtime_peer_connections")) >= 1

    await asyncio.to_thread(sdk.realtime.calls.hangup, call_id)
    deadline = time.monotonic() + 10
    while peer.pc.connectionState != "closed" and peer.channel.readyState != "closed":
        assert time.monotonic() < deadline, peer.pc.connectionState
        await asyncio.sleep(0.1)
    with pytest.raises(openai.NotFoundError) as gone:
        await asyncio.to_thread(sdk.realtime.calls.hangup, call_id)
    assert gone.value.code == "call_not_found"
    stored = await asyncio.to_thread(
        http, "GET", f"{gateway.api_base}/realtime/sessions/{created['session']['id']}", key=alpha_key
    )
    assert stored.json()["status"] == "closed"
    # the call is in the store's history, listed by the CLI: ended, by a hangup, with its session
    listed = (await asyncio.to_thread(cli, "calls", "list", data_dir=gateway.data_dir)).stdout
    row = next((line for line in listed.splitlines() if line.startswith(call_id)), "")
    assert "webrtc" in row and "ended" in row and row.endswith("hangup"), listed
    with sqlite3.connect(gateway.data_dir / "ovos-realtime.db") as db:
        session_id = db.execute("select session_id from calls where id = ?", (call_id,)).fetchone()[0]
    assert session_id == created["session"]["id"]


async def test_a_call_offering_only_pcmu_is_heard(
    gateway: GatewayProcess, alpha_key: str, make_sdk: SdkFactory
) -> None:
    """Opus is not required: a client that offers only G.711 μ-law gets it, and is heard."""
    peer = CallPeer(codec="audio/PCMU")
    try:
        offer = await peer.offer()
        audio_line = next(line for line in offer.splitlines() if line.startswith("m=audio"))
        assert audio_line.split()[3:] == ["0"], audio_line
        sdk = make_sdk(gateway.api_base, alpha_key)
        session = {"type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}
        call_id = await place_call(sdk, peer, session)
        answer = peer.pc.remoteDescription.sdp
        assert "PCMU/8000" in answer and "opus" not in answer.lower()
        await peer.until("session.created")
        peer.microphone.say(user_speech_pcm("what time is it", 48_000, tail_ms=1000))
        transcript = await peer.until("conversation.item.input_audio_transcription.completed", 30)
        assert "time" in transcript["transcript"].lower()
        await asyncio.to_thread(sdk.realtime.calls.hangup, call_id)
    finally:
        await peer.close()


async def test_a_client_secret_call_uses_the_secret_session(
    gateway: GatewayProcess, alpha_key: str, make_sdk: SdkFactory, peer: CallPeer
) -> None:
    minted = await asyncio.to_thread(
        make_sdk(gateway.api_base, alpha_key).realtime.client_secrets.create,
        session={"type": "realtime", "instructions": "Minted for a browser.", "output_modalities": ["text"]},
    )
    browser = make_sdk(gateway.api_base, minted.value)  # sdp only: a raw application/sdp body
    call_id = await place_call(browser, peer)
    created = await peer.until("session.created")
    assert created["session"]["instructions"] == "Minted for a browser."
    assert created["session"]["output_modalities"] == ["text"]
    with pytest.raises(openai.PermissionDeniedError):  # an ek_ may place calls, not manage them
        await asyncio.to_thread(browser.realtime.calls.hangup, call_id)
    await asyncio.to_thread(make_sdk(gateway.api_base, alpha_key).realtime.calls.hangup, call_id)


async def test_another_project_cannot_end_or_join_a_call(
    gateway: GatewayProcess, alpha_key: str, beta_key: str, make_sdk: SdkFactory, peer: CallPeer
) -> None:
    call_id = await place_call(make_sdk(gateway.api_base, alpha_key), peer)
    await peer.until("session.created")
    with pytest.raises(openai.NotFoundError):
        await asyncio.to_thread(make_sdk(gateway.api_base, beta_key).realtime.calls.hangup, call_id)
    async with aiohttp.ClientSession() as http_session:
        url = ws_url(gateway.api_base, call_id=call_id)
        async with http_session.ws_connect(url, headers={"Authorization": f"Bearer {beta_key}"}) as ws:
            error = await EventReader(ws).next()
            assert error["type"] == "error" and error["error"]["code"] == "call_not_found"
            await ws.receive()
            assert ws.close_code == 4000
    peer.send({"type": "session.update", "session": {"type": "realtime", "instructions": "still here"}})
    assert (await peer.until("session.updated"))["session"]["instructions"] == "still here"
    await asyncio.to_thread(make_sdk(gateway.api_base, alpha_key).realtime.calls.hangup, call_id)


async def test_a_sideband_socket_sees_and_steers_the_call(
    gateway: GatewayProcess, alpha_key: str, make_sdk: SdkFactory, peer: CallPeer
) -> None:
    sdk = make_sdk(gateway.api_base, alpha_key)
    call_id = await place_call(sdk, peer)
    created = await peer.until("session.created")
    async with aiohttp.ClientSession() as http_session:
        url = ws_url(gateway.api_base, call_id=call_id)
        async with http_session.ws_connect(url, headers={"Authorization": f"Bearer {alpha_key}"}) as ws:
            sideband = EventReader(ws)
            attached = await sideband.until("session.created")
            assert attached["session"]["id"] == created["session"]["id"]
            update = {"type": "realtime", "instructions": "From the server."}
            await sideband.send({"type": "session.update", "session": update})
            for reader in (sideband, peer):
                updated = await reader.until("session.updated")
                assert updated["session"]["instructions"] == "From the server."
            peer.send({"type": "conversation.item.create", "item": _user_text("hello")})
            added = await sideband.until("conversation.item.added")
            assert added["item"]["content"][0]["text"] == "hello"
            await asyncio.to_thread(sdk.realtime.calls.hangup, call_id)
            while (message := await ws.receive(timeout=10)).type == aiohttp.WSMsgType.TEXT:
                pass  # what was in flight before the hangup
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 1000


async def test_output_audio_buffer_clear_is_a_call_event(
    gateway: GatewayProcess, alpha_key: str, make_sdk: SdkFactory, peer: CallPeer
) -> None:
    sdk = make_sdk(gateway.api_base, alpha_key)
    call_id = await place_call(sdk, peer)
    await peer.until("session.created")
    peer.send({"type": "output_audio_buffer.clear", "event_id": "evt_clear"})
    cleared = await peer.until("output_audio_buffer.cleared")
    assert "response_id" in cleared
    peer.send({"type": "no.such.event", "event_id": "evt_bad"})  # bad input: an error, the call lives
    error = await peer.until("error")
    assert error["error"]["event_id"] == "evt_bad" and error["error"]["code"] == "invalid_value"
    peer.channel.send("{not json")
    assert (await peer.until("error"))["error"]["type"] == "invalid_request_error"
    peer.send({"type": "session.update", "session": {"type": "realtime", "instructions": "alive"}})
    assert (await peer.until("session.updated"))["session"]["instructions"] == "alive"
    await asyncio.to_thread(sdk.realtime.calls.hangup, call_id)


def _user_text(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


async def _offer(*, audio: bool = True) -> str:
    peer = CallPeer(audio=audio)
    try:
        return await peer.offer()
    finally:
        await peer.close()


async def test_bad_offers_get_clear_errors_and_leave_nothing_behind(
    gateway: GatewayProcess, alpha_key: str
) -> None:
    url = f"{gateway.api_base}/realtime/calls"
    good = await _offer()
    sdp = {"Content-Type": "application/sdp"}
    no_audio = await _offer(audio=False)
    g722_only = re.sub(r"m=audio (\d+) (\S+) [\d ]+", r"m=audio \1 \2 9", good)
    g722_only = re.sub(r"a=rtpmap:\d+ .*\r\n", "", g722_only) + "a=rtpmap:9 G722/8000\r\n"
    expired = json.loads(
        (
            await asyncio.to_thread(
                http,
                "POST",
                f"{gateway.api_base}/realtime/client_secrets",
                json_body={"expires_after": {"anchor": "created_at", "seconds": 10}},
                key=alpha_key,
            )
        ).body
    )["value"]
    cases: list[tuple[str, bytes, dict[str, str], str | None, int, str | None]] = [
        ("garbage", b"hello, I am not SDP", sdp, alpha_key, 400, "invalid_offer"),
        ("broken SDP", b"v=0\r\nm=audio banana\r\n", sdp, alpha_key, 400, "invalid_offer"),
        ("no audio", no_audio.encode(), sdp, alpha_key, 400, "invalid_offer"),
        ("unsupported codec", g722_only.encode(), sdp, alpha_key, 400, "invalid_offer"),
        ("no key", good.encode(), sdp, None, 401, None),  # as OpenAI: code null
        ("wrong key", good.encode(), sdp, "sk-ovos-not-a-key", 401, "invalid_api_key"),
        ("JSON", b"{}", {"Content-Type": "application/json"}, alpha_key, 415, "unsupported_content_type"),
    ]
    for name, body, headers, key, status, code in cases:
        got = await asyncio.to_thread(http, "POST", url, body=body, headers=headers, key=key)
        assert got.status == status, (name, got.body)
        assert got.json()["error"]["code"] == code, (name, got.body)

    async def refused_as_expired() -> bool:  # a garbage offer: nothing is made while it is still valid
        got = await asyncio.to_thread(http, "POST", url, body=b"not SDP", headers=sdp, key=expired)
        return got.status == 401

    await wait_until_async(refused_as_expired, "the 10 s client secret to expire", timeout=60, every=0.5)
    got = await asyncio.to_thread(http, "POST", url, body=good.encode(), headers=sdp, key=expired)
    assert got.status == 401 and got.json()["error"]["code"] == "invalid_api_key", got.body
    assert (await asyncio.to_thread(metric, gateway, "ovos_realtime_peer_connections")) == 0


async def test_multipart_offers_are_validated(gateway: GatewayProcess, alpha_key: str) -> None:
    url = f"{gateway.api_base}/realtime/calls"
    good = await _offer()

    def encode(parts: dict[str, tuple[str, str]]) -> tuple[bytes, dict[str, str]]:
        boundary = "xyzzyboundary"
        body = b""
        for name, (content_type, value) in parts.items():
            body += (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n{value}\r\n"
            ).encode()
        body += f"--{boundary}--\r\n".encode()
        return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}

    body, headers = encode({"session": (JSON, '{"type": "realtime"}')})
    got = await asyncio.to_thread(http, "POST", url, body=body, headers=headers, key=alpha_key)
    assert got.status == 400 and got.json()["error"]["param"] == "sdp", got.body
    body, headers = encode({"sdp": (SDP, good), "session": (JSON, '{"type": "realtime", "colour": 1}')})
    got = await asyncio.to_thread(http, "POST", url, body=body, headers=headers, key=alpha_key)
    assert got.status == 400 and got.json()["error"]["code"] == "unknown_parameter", got.body
    body, headers = encode({"sdp": (SDP, good), "session": (JSON, "{oops")})
    got = await asyncio.to_thread(http, "POST", url, body=body, headers=headers, key=alpha_key)
    assert got.status == 400 and got.json()["error"]["code"] == "invalid_json", got.body
    deep = '{"type": "realtime", "tools": ' + "[" * 60_000 + "]" * 60_000 + "}"
    body, headers = encode({"sdp": (SDP, good), "session": (JSON, deep)})
    got = await asyncio.to_thread(http, "POST", url, body=body, headers=headers, key=alpha_key)
    assert got.status == 400 and got.json()["error"]["code"] == "invalid_json", got.body
    body, headers = encode({"sdp": (SDP, good), "session": (JSON, '{"type": "realtime", "model": "gpt-9"}')})
    got = await asyncio.to_thread(http, "POST", url, body=body, headers=headers, key=alpha_key)
    assert got.status == 400 and got.json()["error"]["param"] == "session.model", got.body
    assert (await asyncio.to_thread(metric, gateway, "ovos_realtime_peer_connections")) == 0


async def test_a_call_that_never_connects_is_cleaned_up(tmp_path: Path) -> None:
    gateway, key = await asyncio.to_thread(
        configured_gateway, tmp_path, {"call_connect_timeout_seconds": 1}, "alpha", "no-connect"
    )
    async with gateway:
        abandoned = CallPeer()
        offer = await abandoned.offer()
        await abandoned.close()  # the caller goes away before it ever takes the answer
        got = await asyncio.to_thread(
            http,
            "POST",
            f"{gateway.api_base}/realtime/calls",
            body=offer.encode(),
            headers={"Content-Type": "application/sdp"},
            key=key,
        )
        assert got.status == 201, got.body
        assert (await asyncio.to_thread(metric, gateway, "ovos_realtime_peer_connections")) == 1
        await wait_for_metric(gateway, "ovos_realtime_peer_connections", 0)
        await wait_for_metric(gateway, "ovos_realtime_sessions_open", 0)
        text = (await asyncio.to_thread(http, "GET", f"{gateway.base_url}/metrics")).body.decode()
        ended = 'ovos_realtime_calls_total{outcome="failed",reason="connect_timeout",transport="webrtc"} 1.0'
        assert ended in text
        assert 'ovos_realtime_calls_active{transport="webrtc"} 0.0' in text


def udp_bound(port: int) -> bool:
    """Whether a UDP socket is bound to 127.0.0.1:`port` (the kernel's table)."""
    wanted = f"0100007F:{port:04X}"
    return any(line.split()[1] == wanted for line in Path("/proc/net/udp").read_text().splitlines()[1:])


@pytest.fixture
def turn_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """Debian's coturn on loopback with one long-term user (`ovos` / `turn-secret`)."""
    turnserver = shutil.which("turnserver")
    if turnserver is None:
        pytest.fail("turnserver is missing: scripts/install-system-deps installs coturn")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    log_path = tmp_path / "turnserver.log"
    with log_path.open("wb") as log:
        turn = subprocess.Popen(
            [
                turnserver,
                "-n",
                "--verbose",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                f"--listening-port={port}",
                "--lt-cred-mech",
                "--user=ovos:turn-secret",
                "--realm=ovos-realtime",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--allow-loopback-peers",
                "--log-file=stdout",
                "--simple-log",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wait_until(lambda: udp_bound(port), f"turnserver to bind 127.0.0.1:{port}", timeout=30)
    yield port, log_path
    turn.terminate()
    turn.wait(10)


async def test_configured_turn_servers_are_used_for_calls(
    tmp_path: Path, turn_server: tuple[int, Path]
) -> None:
    """`ice_servers` reaches the peer connection: with a TURN server (Debian's coturn, on
    loopback) the gateway allocates a relay there with the configured credentials (the password
    a secret reference, `env:`), offers it in its answer, and the call works."""
    port, log_path = turn_server
    servers = [
        {
            "urls": [f"turn:127.0.0.1:{port}?transport=udp"],
            "username": "ovos",
            "credential": "env:OVOS_TEST_TURN_CREDENTIAL",
        }
    ]
    gateway, key = await asyncio.to_thread(
        configured_gateway,
        tmp_path,
        {"ice_servers": servers},
        "alpha",
        "turn",
        env={"OVOS_TEST_TURN_CREDENTIAL": "turn-secret"},
    )
    peer = CallPeer()
    try:
        async with gateway:
            sdk = openai.OpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
            offer = await peer.offer()
            raw = await asyncio.to_thread(sdk.realtime.calls.with_raw_response.create, sdp=offer)
            answer = raw.http_response.text
            relayed = [line for line in answer.splitlines() if "typ relay" in line]
            assert relayed and all(" 127.0.0.1 " in line for line in relayed), answer
            await peer.accept(answer)
            await peer.until("session.created")
            call_id = raw.headers["location"].rsplit("/", 1)[1]
            await asyncio.to_thread(sdk.realtime.calls.hangup, call_id)
            sdk.close()
    finally:
        await peer.close()
    turn_log = log_path.read_text()  # noqa: ASYNC240
    assert "user <ovos>" in turn_log and "ALLOCATE processed, success" in turn_log, turn_log[-2000:]


async def test_a_sideband_that_stops_reading_is_cut_off_and_the_call_goes_on(
    gateway: GatewayProcess, alpha_key: str, make_sdk: SdkFactory, peer: CallPeer
) -> None:
    """A sideband's send queue is bounded like a WebSocket session's: a monitor that never reads
    is closed with 1008 (and counted); the caller's call is not affected."""
    sdk = make_sdk(gateway.api_base, alpha_key)
    call_id = await place_call(sdk, peer)
    await peer.until("session.created")
    before = await asyncio.to_thread(metric, gateway, "ovos_realtime_slow_consumers_total")
    update = json.dumps(
        {"type": "session.update", "session": {"type": "realtime", "instructions": "x" * 2000}}
    )
    async with aiohttp.ClientSession() as http_session:
        url = ws_url(gateway.api_base, call_id=call_id)
        async with http_session.ws_connect(url, headers={"Authorization": f"Bearer {alpha_key}"}) as ws:
            for _ in range(6000):  # ~30 MB of session.updated, not read while it piles up
                await ws.send_str(update)
            deadline = time.monotonic() + 120  # the gateway's own count says it cut the monitor off
            while await asyncio.to_thread(metric, gateway, "ovos_realtime_slow_consumers_total") == before:
                assert time.monotonic() < deadline, "the gateway never noticed the monitor stopped reading"
                await asyncio.sleep(0.2)
            async with asyncio.timeout(60):
                closing = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                while (await ws.receive()).type not in closing:
                    pass
            assert ws.close_code == 1008
    assert (await asyncio.to_thread(metric, gateway, "ovos_realtime_slow_consumers_total")) == before + 1
    peer.send({"type": "session.update", "session": {"type": "realtime", "instructions": "still on"}})
    deadline = time.monotonic() + 30
    while True:  # the data channel drains the updates first
        event = await peer.next(max(0.1, deadline - time.monotonic()))
        if event["type"] == "session.updated" and event["session"]["instructions"] == "still on":
            break
    await asyncio.to_thread(sdk.realtime.calls.hangup, call_id)
