"""The replica hop attacked from outside (probe of issue 18): a real gateway process in a cluster
(redis-server, `hop_secret`), reached the way a client would, not through another replica.

- Hop headers a client writes itself (no valid signature) are refused with 401 `invalid_hop` on
  every route: REST, the realtime and sideband WebSocket upgrades, the device microphone, the talk
  page, /metrics. None is believed, none skips the rate limit.
- A request line in absolute form (`POST http://elsewhere/v1/realtime/calls/…`, which HTTP/1.1
  servers accept) for a call another replica holds is replayed to that replica's registered URL
  with the path alone, signed as such: never to the host the client named, never a 500. The
  "other replica" is the test's own HTTP server registered in Redis as a live replica holding the
  call (an injected peer: it records what reaches it and answers 200)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from ovos_realtime_gateway.cluster.hop import HopSigner
from ovos_realtime_gateway.security.secret_refs import SecretValue, parse_reference

from .gateway_process import configured_gateway, http
from .redis_server import RedisServer

pytestmark = pytest.mark.slow
PREFIX = "test-hop-probe:"
HOP_SECRET = "hop-secret-of-the-probe"
CALL_ID = "rtc_" + "ab" * 16
UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}


@dataclass
class Seen:
    method: str
    raw_path: str
    headers: dict[str, str]
    body: bytes


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[tuple[str, str]]:
    """A started gateway in a cluster (its base URL) and a key of project alpha."""
    settings = {"cluster": {"redis_url": redis_server.url, "key_prefix": PREFIX, "hop_secret": HOP_SECRET}}
    gateway, key = configured_gateway(tmp_path_factory.mktemp("hop-probe"), settings, "alpha", "probe")
    with gateway:
        yield gateway.base_url, key


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/v1/models", {}),
        ("POST", f"/v1/realtime/calls/{CALL_ID}/hangup", {}),
        ("GET", "/v1/realtime?model=gpt-realtime", UPGRADE),
        ("GET", f"/v1/realtime?call_id={CALL_ID}", UPGRADE),
        ("GET", "/ovos/microphone", UPGRADE),
        ("GET", "/talk", {}),
        ("GET", "/metrics", {}),
    ],
)
async def test_unsigned_hop_headers_are_refused_on_every_route(
    replica: tuple[str, str], method: str, path: str, headers: dict[str, str]
) -> None:
    base_url, key = replica
    forged = {
        **headers,
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Authorization": f"Bearer {key}",
        "X-OVOS-Hop-Client": "198.51.100.9",  # "I am another replica's client": not believed
    }
    refused = await asyncio.to_thread(http, method, base_url + path, headers=forged)
    assert refused.status == 401, (path, refused.status, refused.body)
    assert refused.json()["error"]["code"] == "invalid_hop", refused.body


async def test_an_absolute_request_line_is_replayed_to_the_owner_only(
    replica: tuple[str, str], redis_server: RedisServer
) -> None:
    base_url, key = replica
    seen: list[Seen] = []

    async def owner(request: web.Request) -> web.Response:
        seen.append(Seen(request.method, request.raw_path, dict(request.headers), await request.read()))
        return web.json_response({"answered_by": "owner"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", owner)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    client = redis_server.client()
    await asyncio.to_thread(
        client.set, f"{PREFIX}replica:rep_0123456789ab", f"http://127.0.0.1:{port}", ex=60
    )
    await asyncio.to_thread(client.set, f"{PREFIX}owner:call:{CALL_ID}", "rep_0123456789ab", ex=60)
    try:
        host, gateway_port = base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(gateway_port))
        path = f"/v1/realtime/calls/{CALL_ID}/hangup"
        writer.write(
            f"POST http://attacker.invalid:9{path} HTTP/1.1\r\nHost: attacker.invalid\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 60)
        writer.close()
        await writer.wait_closed()
        status_line, _, rest = answer.decode().partition("\r\n")
        assert " 200 " in status_line, answer.decode()
        assert json.loads(rest.partition("\r\n\r\n")[2]) == {"answered_by": "owner"}
        assert [hop.raw_path for hop in seen] == [path]
        secret = SecretValue("cluster.hop_secret", parse_reference(HOP_SECRET), HOP_SECRET)
        verified = HopSigner(secret, "rep_test").verify("POST", path, b"", seen[0].headers)
        assert verified is not None and verified.client == "127.0.0.1"
    finally:
        await asyncio.to_thread(client.delete, f"{PREFIX}owner:call:{CALL_ID}")
        client.close()
        await runner.cleanup()
