"""Session lifetime over a live socket (checklist 43–45): close, keep-alive pings, the session
cap, and a client that stops reading."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import openai
import pytest

from .gateway_process import GatewayProcess, create_key, http
from .realtime_helpers import EventReader, ws_url


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway where project `brief` has 10-second sessions."""
    root = tmp_path_factory.mktemp("lifecycle")
    config = root / "gateway.json"
    config.write_text(json.dumps({"project_limits": {"brief": {"max_session_seconds": 10}}}))
    data_dir = root / "data"
    data_dir.mkdir()
    key = create_key(data_dir, "brief")
    with GatewayProcess(data_dir, "--config", str(config), log_name="lifecycle") as process:
        yield process, key


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_session_close_ends_the_session_cleanly(gateway: GatewayProcess, alpha_key: str) -> None:
    async with (
        aiohttp.ClientSession() as http_session,
        http_session.ws_connect(
            ws_url(gateway.api_base, model="gpt-realtime"), headers=_auth(alpha_key)
        ) as ws,
    ):
        reader = EventReader(ws)
        assert (await reader.next())["type"] == "session.created"
        await reader.send({"type": "session.close"})
        message = await asyncio.wait_for(ws.receive(), 10)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1000


@pytest.mark.slow
async def test_the_server_pings_an_idle_client(gateway: GatewayProcess, alpha_key: str) -> None:
    async with (
        aiohttp.ClientSession() as http_session,
        http_session.ws_connect(
            ws_url(gateway.api_base, model="gpt-realtime"), headers=_auth(alpha_key), autoping=False
        ) as ws,
    ):
        assert json.loads((await ws.receive()).data)["type"] == "session.created"
        message = await asyncio.wait_for(ws.receive(), 25)  # the server pings every 20 s
        assert message.type == aiohttp.WSMsgType.PING
        await ws.pong(message.data)
        await ws.send_str(json.dumps({"type": "input_audio_buffer.clear"}))
        assert json.loads((await ws.receive()).data)["type"] == "input_audio_buffer.cleared"


@pytest.mark.slow
async def test_session_cap_is_session_expired_then_close_1001(
    short_lived: tuple[GatewayProcess, str],
) -> None:
    gateway, key = short_lived
    async with (
        aiohttp.ClientSession() as http_session,
        http_session.ws_connect(ws_url(gateway.api_base, model="gpt-realtime"), headers=_auth(key)) as ws,
    ):
        reader = EventReader(ws)
        created = await reader.next()
        assert abs(created["session"]["expires_at"] - (time.time() + 10)) <= 2
        error = await reader.until("error", timeout=20)
        assert error["error"]["code"] == "session_expired"
        assert error["error"]["message"] == "Your session hit the maximum duration of 10 seconds."
        message = await asyncio.wait_for(ws.receive(), 10)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1001


async def test_a_client_that_stops_reading_is_disconnected(
    short_lived: tuple[GatewayProcess, str], tmp_path: Path
) -> None:
    """The send queue is bounded: a client that never reads is cut off (1008), with a metric."""
    gateway, key = short_lived
    audio = base64.b64encode(bytes(2 * 24000 * 20)).decode()  # 20 s of silence: ~1.3 MB per retrieve
    item = {
        "id": "item_big",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_audio", "audio": audio}],
    }
    async with (
        aiohttp.ClientSession() as http_session,
        http_session.ws_connect(
            ws_url(gateway.api_base, model="gpt-realtime"), headers=_auth(key), max_msg_size=64 * 1024 * 1024
        ) as ws,
    ):
        await ws.send_str(json.dumps({"type": "conversation.item.create", "item": item}))
        retrieve = json.dumps({"type": "conversation.item.retrieve", "item_id": "item_big"})
        for _ in range(60):  # ~80 MB of answers, none read
            await ws.send_str(retrieve)
        await _until_cut_off(gateway, 1)
        codes = []
        async with asyncio.timeout(30):
            while True:
                message = await ws.receive()
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    codes.append(ws.close_code)
                    break
        assert codes == [1008]
    metrics = (await asyncio.to_thread(http, "GET", f"{gateway.base_url}/metrics")).body.decode()
    assert "ovos_realtime_slow_consumers_total 1.0" in metrics


async def test_a_client_secret_can_shorten_its_session(gateway: GatewayProcess, alpha_key: str) -> None:
    """ovos-realtime extension `max_session_seconds`: the secret's cap applies, never above the project's."""
    client = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=alpha_key, max_retries=0)
    for asked, expected in ((30, 30), (86_400, 3600)):
        secret = await client.realtime.client_secrets.create(
            session={"type": "realtime"}, extra_body={"max_session_seconds": asked}
        )
        user = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=secret.value, max_retries=0)
        async with user.realtime.connect(model="gpt-realtime") as conn:
            created = await conn.recv()
            assert abs(created.session.expires_at - (time.time() + expected)) <= 2  # type: ignore[union-attr]  # recv() is typed as the SDK's union of server events and sessions
        await user.close()
    with pytest.raises(openai.BadRequestError) as refused:
        await client.realtime.client_secrets.create(
            session={"type": "realtime"}, extra_body={"max_session_seconds": 5}
        )
    assert refused.value.body["param"] == "max_session_seconds"  # type: ignore[index]  # APIError.body is an object
    await client.close()


async def _until_cut_off(gateway: GatewayProcess, count: int) -> None:
    """Until the gateway counts `count` slow consumers (a generous deadline, not a guess)."""
    deadline = time.monotonic() + 120
    while (
        f"ovos_realtime_slow_consumers_total {count:.1f}"
        not in (await asyncio.to_thread(http, "GET", f"{gateway.base_url}/metrics")).body.decode()
    ):
        assert time.monotonic() < deadline, "the gateway never noticed the client stopped reading"
        await asyncio.sleep(0.2)


def _established(local_port: int, remote_port: int) -> bool:
    """Whether the kernel holds an ESTABLISHED TCP socket local_port → remote_port (loopback)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if (
                int(local.rsplit(":", 1)[1], 16) == local_port
                and int(remote.rsplit(":", 1)[1], 16) == remote_port
            ):
                if state == "01":
                    return True
    return False


def _masked_text_frame(text: str) -> bytes:
    """One client → server WebSocket text frame (clients must mask)."""
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    size = len(payload)
    if size < 126:
        header += bytes([0x80 | size])
    elif size < 65536:
        header += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        header += bytes([0x80 | 127]) + struct.pack("!Q", size)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_a_client_that_never_reads_again_loses_its_connection(
    short_lived: tuple[GatewayProcess, str],
) -> None:
    """A client that stops reading at the socket (its receive window full, the gateway's send
    buffer full behind it): the close frame can never reach it, so the close handshake cannot
    happen. The gateway's side of the TCP connection must still go within CLOSE_TIMEOUT_S and a
    margin, not stay ESTABLISHED with its buffers (a soak saw one held for 12 minutes). A raw
    socket that never calls recv after the handshake; the kernel's table is watched."""
    from urllib.parse import urlparse

    from ovos_realtime_gateway.transports.ws_sending import CLOSE_TIMEOUT_S

    gateway, key = short_lived
    metrics = http("GET", f"{gateway.base_url}/metrics").body.decode()
    counted = re.search(r"^ovos_realtime_slow_consumers_total (\S+)$", metrics, re.MULTILINE)
    count = 1 + (int(float(counted.group(1))) if counted else 0)
    server = urlparse(gateway.base_url)
    with socket.create_connection((server.hostname or "127.0.0.1", server.port or 80)) as raw:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        request = (
            "GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\n"
            f"Host: {server.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {key}\r\n\r\n"
        )
        raw.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += raw.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        audio = base64.b64encode(bytes(2 * 24000 * 20)).decode()
        content = [{"type": "input_audio", "audio": audio}]
        item = {"id": "item_big", "type": "message", "role": "user", "content": content}
        raw.sendall(_masked_text_frame(json.dumps({"type": "conversation.item.create", "item": item})))
        retrieve = _masked_text_frame(
            json.dumps({"type": "conversation.item.retrieve", "item_id": "item_big"})
        )
        for _ in range(60):  # ~80 MB of answers; from now on this client reads nothing
            raw.sendall(retrieve)
        asyncio.run(_until_cut_off(gateway, count))
        client_port = raw.getsockname()[1]
        deadline = time.monotonic() + CLOSE_TIMEOUT_S + 30
        while _established(server.port or 80, client_port):
            assert time.monotonic() < deadline, (
                "the gateway still holds the connection of a client it cut off"
            )
            time.sleep(0.5)
