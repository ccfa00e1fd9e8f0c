"""Replaying a request to the replica that holds its call, over the signed hop (`hop.py`): a REST
request's answer comes back whole (status, headers, body); a sideband WebSocket is relayed frame
by frame both ways, each side's close (code and reason) passed on to the other."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web
from multidict import CIMultiDict
from prometheus_client import Counter
from yarl import URL

from ..protocol import errors
from ..tasks import TaskSupervisor
from .hop import HopSigner
from .registry import Kind, Registry, RegistryUnavailable, Replica

log = logging.getLogger("ovos_realtime.cluster")

# what a hop passes on of the client's request (credentials, body type, dialect); the rest is ours
PASSED_ON = ("Authorization", "Content-Type", "OpenAI-Beta", "Accept")
# what is not the owner's answer but its connection's, made again for the client
HOP_BY_HOP = {"connection", "content-length", "date", "keep-alive", "server", "transfer-encoding"}
CONNECT_TIMEOUT_S = 5.0
ANSWER_TIMEOUT_S = 60.0  # an accept waits for the trunk's ACK
MAX_FRAME_BYTES = 32 * 1024 * 1024
UNSENDABLE = {1005, 1006, 1015}


async def owner_elsewhere(registry: Registry, kind: Kind, thing_id: str) -> Replica | None:
    """The other live replica holding the thing; None when none does (or this one does). While
    Redis cannot answer, a 503 the client may retry."""
    try:
        owner = await registry.owner(kind, thing_id)
    except RegistryUnavailable:
        raise unavailable("The registry of replicas cannot be reached") from None
    return owner if owner is not None and owner.id != registry.replica.id else None


def path_of(request: web.Request) -> str:
    """The path and query to replay, as the client encoded them, without the scheme and host a
    request line in absolute form carries (`POST http://elsewhere/v1/…`): the hop goes to the
    owner's URL and nowhere else."""
    return request.rel_url.raw_path_qs


def unavailable(what: str) -> errors.ApiError:
    return errors.ApiError(
        503,
        f"{what}; try again shortly.",
        type=errors.SERVER_ERROR,
        code="replica_unavailable",
        headers={"Retry-After": "1"},
    )


class OwnerUnreachable(Exception):
    """The owner could not be reached (gone since the registry named it, or cut off)."""


async def check_gone(registry: Registry, kind: Kind, thing_id: str, forwards: Counter, route: str) -> None:
    """After OwnerUnreachable: returns when the owner is gone since (the thing with it; counted
    `owner_gone`), for the caller to answer as for an unknown one; while the owner still lives, a
    503 the client may retry (counted `unreachable`). `route`: the forwards' `kind` label."""
    if await owner_elsewhere(registry, kind, thing_id) is None:
        forwards.labels(kind=route, result="owner_gone").inc()
        return
    forwards.labels(kind=route, result="unreachable").inc()
    raise unavailable(f"The replica holding this {kind} cannot be reached") from None


@dataclass(frozen=True)
class Answer:
    status: int
    headers: CIMultiDict[str]
    body: bytes


class Forwarder:
    """This replica's client for hops to the others (one connection pool, closed at stop)."""

    def __init__(self, signer: HopSigner) -> None:
        self.signer = signer
        self._clients: dict[str, aiohttp.ClientSession] = {}

    def _session(self, kind: str = "rest") -> aiohttp.ClientSession:
        """The pool for REST hops (an answer within ANSWER_TIMEOUT_S), or for relays (`ws`: no
        total timeout, a sideband lasts as long as its call)."""
        if kind not in self._clients:
            total = ANSWER_TIMEOUT_S if kind == "rest" else None
            timeout = aiohttp.ClientTimeout(total=total, sock_connect=CONNECT_TIMEOUT_S)
            self._clients[kind] = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)
        return self._clients[kind]

    def _headers(
        self, method: str, raw_path: str, body: bytes, client: str, given: Mapping[str, str]
    ) -> dict[str, str]:
        headers = {name: given[name] for name in PASSED_ON if name in given}
        return {**headers, **self.signer.sign(method, raw_path, body, client, given.get("Authorization", ""))}

    async def request(
        self, owner: Replica, method: str, raw_path: str, headers: Mapping[str, str], body: bytes, client: str
    ) -> Answer:
        """The owner's answer to the request, as it gave it."""
        url = URL(owner.url.rstrip("/") + raw_path, encoded=True)
        signed = self._headers(method, raw_path, body, client, headers)
        try:
            async with self._session().request(method, url, headers=signed, data=body) as response:
                answer = await response.read()
                kept = CIMultiDict((k, v) for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP)
                return Answer(response.status, kept, answer)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
            raise OwnerUnreachable(f"{owner.id} at {owner.url}: {exc}") from exc

    async def relay(
        self,
        ws: web.WebSocketResponse,
        owner: Replica,
        raw_path: str,
        headers: Mapping[str, str],
        client: str,
    ) -> None:
        """Relay the client's open socket `ws` to the owner's socket at `raw_path` until one ends."""
        url = URL(owner.url.rstrip("/") + raw_path, encoded=True)
        signed = self._headers("GET", raw_path, b"", client, headers)
        try:
            upstream = await asyncio.wait_for(
                self._session("ws").ws_connect(
                    url, headers=signed, heartbeat=20.0, max_msg_size=MAX_FRAME_BYTES
                ),
                ANSWER_TIMEOUT_S,
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise OwnerUnreachable(f"{owner.id} at {owner.url}: {exc}") from exc
        tasks = TaskSupervisor("relay")
        async with upstream:
            down = tasks.spawn("down", _pump(upstream, ws))
            up = tasks.spawn("up", _pump(ws, upstream))
            try:
                done, _ = await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
                ended, other, closing = (down, up, ws) if down in done else (up, down, upstream)
                other.cancel()  # no read in flight: the close below waits for the other side's reply
                await asyncio.gather(other, return_exceptions=True)
                code, reason = ended.result()  # the owner's close goes to the client, or back
                await closing.close(code=code, message=reason)
            finally:
                await tasks.close()

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> tuple[int, bytes]:
    """Frames from `source` to `sink` until `source` closes: its close code and reason."""
    while True:
        message = await source.receive()
        if message.type == WSMsgType.TEXT:
            with contextlib.suppress(ConnectionError):
                await sink.send_str(message.data)
        elif message.type == WSMsgType.BINARY:
            with contextlib.suppress(ConnectionError):
                await sink.send_bytes(message.data)
        elif message.type == WSMsgType.CLOSE:
            code = int(message.data)
            if code in UNSENDABLE:  # "no code" and "lost" are not codes one may send
                code = WSCloseCode.OK
            return code, str(message.extra or "").encode()
        elif message.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return WSCloseCode.GOING_AWAY, b"the replica holding the call was lost"
