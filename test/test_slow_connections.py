"""Connections that hold a slot without sending a request (slowloris): raw sockets that send a
request line a byte at a time, or nothing, are closed after `header_timeout_seconds`; past
`max_pending_connections` the oldest waiting one is closed. A normal client is served meanwhile,
and neither a slow request body nor an open WebSocket is cut."""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
from pathlib import Path

import pytest

from .gateway_process import GatewayProcess, configured_gateway, http
from .realtime_helpers import realtime_socket

SLOW_REQUEST = b"GET /v1/models HTTP/1.1\r\nHost: gateway\r\nUser-Agent: slowloris\r\n"


def _address(gateway: GatewayProcess) -> tuple[str, int]:
    host, port = gateway.base_url.split("://")[1].split(":")
    return host, int(port)


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """Whether the server closes the connection within `within` seconds (EOF or reset)."""
    try:
        await asyncio.wait_for(reader.read(), within)  # whatever was left unread, up to EOF
        return True
    except ConnectionResetError:
        return True
    except asyncio.TimeoutError:
        return False


async def _still_open(readers: list[asyncio.StreamReader], within: float = 30.0) -> list[int]:
    """The indexes of the connections the server has not closed within `within` seconds."""
    closed = await asyncio.gather(*(_closed_by_server(reader, within) for reader in readers))
    return [index for index, done in enumerate(closed) if not done]


async def _trickle(writer: asyncio.StreamWriter, data: bytes, every: float = 0.2) -> None:
    """Send `data` a byte at a time, never finishing, until the server closes the connection."""
    with contextlib.suppress(ConnectionError, OSError):
        while not writer.is_closing():
            for byte in data:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(every)
            data = b"X-Padding: " + b"a" * 1000  # a header that never ends


def _metric(gateway: GatewayProcess, name: str) -> float:
    text = http("GET", f"{gateway.base_url}/metrics").body.decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_connections_that_do_not_finish_their_headers_are_closed(tmp_path: Path) -> None:
    gateway, key = await asyncio.to_thread(
        configured_gateway, tmp_path, {"header_timeout_seconds": 1}, "alpha", "slowloris"
    )
    async with gateway:
        host, port = _address(gateway)
        slow = [await asyncio.open_connection(host, port) for _ in range(20)]
        silent = [await asyncio.open_connection(host, port) for _ in range(10)]
        senders = [asyncio.create_task(_trickle(writer, SLOW_REQUEST)) for _, writer in slow]
        # a kept-alive connection whose next request never finishes is closed too
        kept_reader, kept = await asyncio.open_connection(host, port)
        kept.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        assert (await kept_reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        senders.append(asyncio.create_task(_trickle(kept, SLOW_REQUEST)))
        # a request whose headers came in time may send its body slowly
        body_reader, body_writer = await asyncio.open_connection(host, port)
        body_writer.write(
            b"POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: gateway\r\n"
            + f"Authorization: Bearer {key}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        )
        try:
            # a WebSocket session outlives the timeout several times over
            async with realtime_socket(gateway.api_base, key) as events:
                await events.until("session.created")
                # a normal client is served while the slow ones hold their sockets
                assert (await asyncio.to_thread(http, "GET", f"{gateway.base_url}/healthz")).status == 200
                readers = [reader for reader, _ in slow + silent] + [kept_reader]
                assert await _still_open(readers) == []
                await asyncio.sleep(2)  # the slow body: well past the header timeout
                body_writer.write(b"{}")
                answer = await asyncio.wait_for(body_reader.read(), 30)
                assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
                await events.send({"type": "session.update", "session": {"type": "realtime"}})
                await events.until("session.updated")
        finally:
            for task in senders:
                task.cancel()
            await asyncio.gather(*senders, return_exceptions=True)
            for _, writer in [*slow, *silent, (kept_reader, kept), (body_reader, body_writer)]:
                writer.close()
        assert (
            await asyncio.to_thread(
                _metric, gateway, 'ovos_realtime_connections_closed_total{reason="header_timeout"}'
            )
        ) >= 30


async def test_past_max_pending_connections_the_oldest_waiting_one_is_closed(tmp_path: Path) -> None:
    settings = {"max_pending_connections": 5, "header_timeout_seconds": 120}
    gateway, _ = await asyncio.to_thread(configured_gateway, tmp_path, settings, "alpha", "pending")
    async with gateway:
        host, port = _address(gateway)
        older = [await asyncio.open_connection(host, port) for _ in range(5)]
        newer = [await asyncio.open_connection(host, port) for _ in range(5)]
        try:
            closed = await asyncio.gather(*(_closed_by_server(r, within=30) for r, _ in older))
            assert all(closed), "the five oldest waiting connections are closed for the newer ones"
            for reader, writer in newer:  # the newer ones are alive: each is answered
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
                assert (await asyncio.wait_for(reader.read(), 30)).startswith(b"HTTP/1.1 200")
        finally:
            for _, writer in older + newer:
                writer.close()
        assert (
            await asyncio.to_thread(
                _metric, gateway, 'ovos_realtime_connections_closed_total{reason="too_many_pending"}'
            )
        ) == 5
        assert (await asyncio.to_thread(_metric, gateway, "ovos_realtime_connections_pending")) == 0
    assert "closing the oldest ones" in gateway.logs()


@pytest.mark.slow
async def test_over_tls_the_handshake_and_the_headers_are_bounded(tmp_path: Path) -> None:
    settings = {"header_timeout_seconds": 1, "tls_self_signed": True}
    gateway, _ = await asyncio.to_thread(configured_gateway, tmp_path, settings, "alpha", "slow-tls")
    async with gateway:
        host, port = _address(gateway)
        no_handshake = [await asyncio.open_connection(host, port) for _ in range(5)]
        context = ssl.create_default_context(cafile=str(gateway.data_dir / "tls" / "cert.pem"))
        slow = [await asyncio.open_connection(host, port, ssl=context) for _ in range(5)]
        senders = [asyncio.create_task(_trickle(writer, SLOW_REQUEST)) for _, writer in slow]
        started = time.monotonic()
        try:
            readers = [reader for reader, _ in no_handshake + slow]
            assert await _still_open(readers) == []
            assert time.monotonic() - started < 30
        finally:
            for task in senders:
                task.cancel()
            await asyncio.gather(*senders, return_exceptions=True)
            for _, writer in no_handshake + slow:
                writer.close()
