"""Replicas behind no balancer (issue 18's acceptance, the call items): three real gateway
processes A, B and C on loopback, each with its own data dir, on one throwaway PostgreSQL store and
one redis-server (the registry, `cluster`, and the shared limits). A secret minted on A opens a
session on B; a WebRTC call placed on A (an aiortc peer) is hung up through C; a sideband on B sees
A's call and steers it; a SIP call (sipp) landing on A is accepted through B and heard on A;
another project's key finds none of these calls on any replica. Where the issue lets the client
pick, it picks a replica at random (the seed is printed; `REPLICAS_SEED=N` replays a run).

Long because every test shares one trio of gateways (their start is most of the cost) and its
helpers: the webhook receiver, the registry lookups, the other project's checks."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import queue
import random
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import openai
import psycopg
import pytest

from ovos_realtime_gateway.cluster.hop import HopSigner
from ovos_realtime_gateway.security.secret_refs import SecretValue, parse_reference

from .gateway_process import GatewayProcess, cli, create_key, http
from .postgres_server import PostgresServer
from .realtime_helpers import EventReader, ws_url
from .redis_server import RedisServer
from .speech import user_speech_pcm
from .test_sip_calls import RtpSink, Sipp, free_udp_port, ulaw_wav
from .test_webrtc_calls import metric, place_call
from .waiting import wait_until_async
from .webrtc_peer import CallPeer

pytestmark = pytest.mark.slow
PREFIX = "test-replicas:"
HOP_SECRET = "hop-secret-of-the-test-cluster"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"ovos-realtime-test-replicas-webhook").decode()
SEED = int(os.environ.get("REPLICAS_SEED", random.SystemRandom().randrange(1 << 30)))


class WebhookReceiver:
    """The app's webhook endpoint (a thread's HTTP server): what it got, unwrapped by the SDK."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[bytes, dict[str, str]]] = queue.Queue()
        received = self.received

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.put((body, dict(self.headers)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/openai"

    def incoming(self, timeout: float = 30.0) -> Any:
        body, headers = self.received.get(timeout=timeout)
        verifier = openai.OpenAI(api_key="unused", webhook_secret=WEBHOOK_SECRET)
        try:
            return verifier.webhooks.unwrap(body.decode(), headers)
        finally:
            verifier.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Trio:
    a: GatewayProcess
    b: GatewayProcess
    c: GatewayProcess
    key: str  # project "alpha"
    other: str  # project "beta": none of alpha's calls exist for it
    sip_port: int  # A's SIP endpoint (the trunk's calls land on A)
    phones_key: str  # project "phones", which owns the SIP calls
    webhooks: WebhookReceiver
    redis: RedisServer
    rng: random.Random
    store_url: str
    limited: str  # project "gamma": 2 requests a minute, over all replicas

    @property
    def all(self) -> tuple[GatewayProcess, GatewayProcess, GatewayProcess]:
        return self.a, self.b, self.c

    def pick(self) -> GatewayProcess:
        return self.rng.choice(self.all)

    async def owner_url(self, kind: str, thing_id: str) -> str | None:
        """The URL of the replica the registry names for the thing (None: none holds it)."""
        client = self.redis.client()
        replica = await asyncio.to_thread(client.get, f"{PREFIX}owner:{kind}:{thing_id}")
        if replica is None:
            return None
        url = await asyncio.to_thread(client.get, f"{PREFIX}replica:{replica!s}")
        return str(url) if url is not None else None


@pytest.fixture(scope="module")
def trio(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer, redis_server: RedisServer
) -> Iterator[Trio]:
    print(f"replicas: REPLICAS_SEED={SEED}")
    root = tmp_path_factory.mktemp("replicas")
    store_url = postgres.create_database("replicas")
    webhooks = WebhookReceiver()
    sip_port = free_udp_port()
    shared: dict[str, Any] = {
        "store_url": store_url,
        "cluster": {
            "redis_url": redis_server.url,
            "key_prefix": PREFIX,
            "hop_secret": HOP_SECRET,
            "lease_seconds": 3,
        },
        "shared_limits": {"redis_url": redis_server.url, "key_prefix": PREFIX + "limits:"},
        "project_limits": {"gamma": {"requests_per_minute": 2}},
    }
    sip = {
        "enabled": True,
        "port": sip_port,
        "project": "phones",
        "webhook_url": webhooks.url,
        "webhook_secret": WEBHOOK_SECRET,
    }
    configs = {}
    for name in ("a", "b", "c"):
        configs[name] = root / f"{name}.json"
        configs[name].write_text(json.dumps({**shared, "sip": sip} if name == "a" else shared))

    projects = ("alpha", "beta", "phones", "gamma")
    keys = {project: create_key(root / "cli", project, configs["b"]) for project in projects}
    gateways = [
        GatewayProcess(root / f"{name}-data", "--config", str(configs[name]), log_name=name)
        for name in ("a", "b", "c")
    ]
    try:
        for gateway in gateways:
            gateway.start()
        a, b, c = gateways
        yield Trio(
            a,
            b,
            c,
            keys["alpha"],
            keys["beta"],
            sip_port,
            keys["phones"],
            webhooks,
            redis_server,
            random.Random(SEED),
            store_url,
            keys["gamma"],
        )
    finally:
        for gateway in gateways:
            gateway.stop()
        webhooks.close()


@pytest.fixture
async def peer() -> AsyncIterator[CallPeer]:
    made = CallPeer()
    yield made
    await made.close()


def sdk(gateway: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)


async def test_a_secret_minted_on_a_opens_a_session_on_b(trio: Trio) -> None:
    """The secret is in the shared store; the session B opens is B's in the registry while open."""
    minting = sdk(trio.a, trio.key)
    minted = await asyncio.to_thread(
        minting.realtime.client_secrets.create,
        session={"type": "realtime", "model": "gpt-realtime", "instructions": "Minted on A."},
    )
    minting.close()
    browser = openai.AsyncOpenAI(base_url=trio.b.api_base, api_key=minted.value, max_retries=0)
    async with browser.realtime.connect(model="gpt-realtime") as connection:
        created = await asyncio.wait_for(connection.recv(), 30)
        assert created.type == "session.created"
        session = created.model_dump()["session"]
        assert session["instructions"] == "Minted on A."
        session_id = session["id"]
        assert await trio.owner_url("session", str(session_id)) == trio.b.base_url
    await browser.close()

    async def released() -> bool:
        return await trio.owner_url("session", str(session_id)) is None

    await wait_until_async(released, "the closed session's registration gone", 30)
    other = trio.pick()
    stored = await asyncio.to_thread(
        http, "GET", f"{other.api_base}/realtime/sessions/{session_id}", key=trio.key
    )
    assert stored.status == 200 and stored.json()["status"] == "closed", (other.base_url, stored.body)


async def _not_found_everywhere(trio: Trio, call_id: str) -> None:
    """Another project's key: the call is 404 `call_not_found` on every replica (control and sideband)."""
    for gateway in trio.all:
        with sdk(gateway, trio.other) as stranger:
            with pytest.raises(openai.NotFoundError) as refused:
                await asyncio.to_thread(stranger.realtime.calls.hangup, call_id)
            assert refused.value.code == "call_not_found", gateway.base_url
        async with aiohttp.ClientSession() as session:
            url = ws_url(gateway.api_base, call_id=call_id)
            async with session.ws_connect(url, headers={"Authorization": f"Bearer {trio.other}"}) as ws:
                error = await EventReader(ws).next(30)
                assert error["type"] == "error" and error["error"]["code"] == "call_not_found", error
                await ws.receive(timeout=30)
                assert ws.close_code == 4000, gateway.base_url


async def test_a_webrtc_call_placed_on_a_is_hung_up_through_c(trio: Trio, peer: CallPeer) -> None:
    with sdk(trio.a, trio.key) as on_a:
        call_id = await place_call(on_a, peer)
    await peer.until("session.created", 30)
    assert await trio.owner_url("call", call_id) == trio.a.base_url
    await _not_found_everywhere(trio, call_id)
    peer.send({"type": "session.update", "session": {"type": "realtime", "instructions": "still here"}})
    assert (await peer.until("session.updated"))["session"]["instructions"] == "still here"
    with sdk(trio.c, trio.key) as on_c:
        raw = await asyncio.to_thread(on_c.realtime.calls.with_raw_response.hangup, call_id)
        assert raw.status_code == 200
        assert raw.headers["openai-project"]  # the owner's answer, through C
    answered = 'ovos_realtime_cluster_forwards_total{kind="control",result="answered"}'
    assert await asyncio.to_thread(metric, trio.c, answered) >= 1
    await wait_until_async(
        lambda: peer.pc.connectionState == "closed" or peer.channel.readyState == "closed",
        "A's peer connection closed by a hangup sent to C",
        30,
    )
    assert await trio.owner_url("call", call_id) is None
    with sdk(trio.pick(), trio.key) as anywhere:
        with pytest.raises(openai.NotFoundError) as gone:
            await asyncio.to_thread(anywhere.realtime.calls.hangup, call_id)
    assert gone.value.code == "call_not_found"


async def test_a_sideband_on_b_sees_and_steers_a_call_on_a(trio: Trio, peer: CallPeer) -> None:
    with sdk(trio.a, trio.key) as on_a:
        call_id = await place_call(on_a, peer)
    created = await peer.until("session.created", 30)
    async with aiohttp.ClientSession() as session:
        url = ws_url(trio.b.api_base, call_id=call_id)
        async with session.ws_connect(url, headers={"Authorization": f"Bearer {trio.key}"}) as ws:
            sideband = EventReader(ws)
            attached = await sideband.until("session.created", 30)
            assert attached["session"]["id"] == created["session"]["id"]
            update = {"type": "realtime", "instructions": "Steered from B.", "output_modalities": ["text"]}
            await sideband.send({"type": "session.update", "session": update})
            for reader in (sideband, peer):
                updated = await reader.until("session.updated", 30)
                assert updated["session"]["instructions"] == "Steered from B."
            peer.send({"type": "conversation.item.create", "item": _user_text("hello from the caller")})
            added = await sideband.until("conversation.item.added", 30)  # A's event, seen on B
            assert added["item"]["content"][0]["text"] == "hello from the caller"
            await sideband.send({"type": "response.create"})  # B's request reaches A's engine
            started = await peer.until("response.created", 30)
            done = await sideband.until("response.done", 30)
            assert done["response"]["id"] == started["response"]["id"]
            # a second monitor, through C, leaves with its own close: the call and B's monitor stay
            async with session.ws_connect(
                ws_url(trio.c.api_base, call_id=call_id), headers={"Authorization": f"Bearer {trio.key}"}
            ) as watcher:
                await EventReader(watcher).until("session.created", 30)
                await watcher.close(code=4321, message=b"monitor done")
            await wait_until_async(  # its close, passed on by C, is what A's sideband saw
                lambda: "the monitor left (close 4321 monitor done)" in trio.a.logs(),
                "the monitor's close code and reason on A",
                30,
            )
            peer.send({"type": "session.update", "session": {"type": "realtime", "instructions": "on"}})
            assert (await sideband.until("session.updated", 30))["session"]["instructions"] == "on"
            with sdk(trio.a, trio.key) as on_a:
                await asyncio.to_thread(on_a.realtime.calls.hangup, call_id)
            while (message := await ws.receive(timeout=30)).type == aiohttp.WSMsgType.TEXT:
                pass  # what was in flight before the hangup
            assert message.type == aiohttp.WSMsgType.CLOSE
            assert (ws.close_code, message.extra) == (1000, "call ended")  # A's close, passed on by B
    relayed = 'ovos_realtime_cluster_forwards_total{kind="sideband",result="answered"}'
    assert await asyncio.to_thread(metric, trio.b, relayed) >= 1


async def test_a_forwarded_request_counts_once(trio: Trio, peer: CallPeer) -> None:
    """gamma may make 2 requests a minute: placing a call on A and hanging it up through C use
    them up; A does not count the hangup C forwarded a second time (it would refuse it, 429)."""
    with sdk(trio.a, trio.limited) as on_a:
        call_id = await place_call(on_a, peer)
    with sdk(trio.c, trio.limited) as on_c:
        raw = await asyncio.to_thread(on_c.realtime.calls.with_raw_response.hangup, call_id)
    assert raw.status_code == 200
    assert raw.headers["x-ratelimit-remaining-requests"] == "0"
    with sdk(trio.pick(), trio.limited) as anywhere, pytest.raises(openai.RateLimitError):
        await asyncio.to_thread(anywhere.models.list)


async def test_hop_headers_are_believed_only_when_signed(trio: Trio) -> None:
    """A request with hop headers that are not validly signed is refused (401 `invalid_hop`), not
    believed; a validly signed one (the test knows the cluster's secret) is served, and the owner
    takes the client's address from it (the audit row of its failed authentication names it)."""
    secret = _secret_of(HOP_SECRET)
    path = "/v1/realtime/calls/rtc_00000000000000000000000000000000/hangup"
    key = {"Authorization": "Bearer sk-ovos-wrong"}
    signed = {
        **HopSigner(secret, "rep_000000000000").sign("POST", path, b"", "192.0.2.77", key["Authorization"]),
        **key,
    }
    forged = HopSigner(_secret_of("not-the-secret"), "rep_000000000000").sign(
        "POST", path, b"", "198.51.100.7", key["Authorization"]
    )
    moved = {**signed, "X-OVOS-Hop-Client": "198.51.100.8"}  # signed for another client
    rekeyed = {**signed, "Authorization": "Bearer sk-ovos-other"}  # a captured hop, another key
    for headers in ({**forged, **key}, moved, {"X-OVOS-Hop-Client": "198.51.100.9", **key}, rekeyed):
        refused = await asyncio.to_thread(http, "POST", trio.a.base_url + path, headers=headers)
        assert refused.status == 401 and refused.json()["error"]["code"] == "invalid_hop", refused.body
    served = await asyncio.to_thread(http, "POST", trio.a.base_url + path, headers=signed)
    assert served.status == 401 and served.json()["error"]["code"] == "invalid_api_key", served.body

    def audited_from() -> list[str]:
        with psycopg.connect(trio.store_url) as db:
            rows = db.execute("select detail from audit_log where decision = 'unauthenticated'").fetchall()
        return [str(row[0]) for row in rows]

    await wait_until_async(
        lambda: asyncio.to_thread(lambda: any("192.0.2." in d for d in audited_from())),
        "the failed authentication audited with the hop's client",
        30,
    )
    assert not any("198.51.100." in d for d in audited_from())  # refused hops were never believed


def _secret_of(value: str) -> SecretValue:
    return SecretValue("cluster.hop_secret", parse_reference(value), value)


def _user_text(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


async def test_a_sip_call_landing_on_a_is_accepted_through_b(trio: Trio, tmp_path: Path) -> None:
    """sipp calls A; the webhook goes out from A; the app accepts through B; the caller's question
    is heard on A (its transcript, on a sideband through C) and A's RTP reaches the phone; the
    other project finds the call nowhere; a hangup through C ends it (sipp gets A's BYE)."""
    wav = tmp_path / "question.wav"
    ulaw_wav(wav, user_speech_pcm("what time is it", 8000, lead_ms=2500, tail_ms=1500))
    loop = asyncio.get_running_loop()
    sink = RtpSink()
    rtp, _ = await loop.create_datagram_endpoint(lambda: sink, local_addr=("127.0.0.1", 0))
    rtp_port = rtp.get_extra_info("sockname")[1]
    sipp = await Sipp(
        "talk_then_gateway_hangs_up.xml",
        trio.sip_port,
        tmp_path,
        rtp_port=str(rtp_port),
        question_wav=str(wav),
    ).start()
    try:
        event = await asyncio.to_thread(trio.webhooks.incoming)
        assert event.type == "realtime.call.incoming"
        call_id = event.data.call_id
        assert await trio.owner_url("call", call_id) == trio.a.base_url
        with sdk(trio.b, trio.phones_key) as on_b:
            await asyncio.to_thread(
                on_b.realtime.calls.accept,
                call_id,
                type="realtime",
                instructions="Accepted through B.",
                audio={"input": {"transcription": {"model": "whisper-1"}}},
            )
        await _not_found_everywhere(trio, call_id)
        async with aiohttp.ClientSession() as session:
            url = ws_url(trio.c.api_base, call_id=call_id)
            async with session.ws_connect(url, headers={"Authorization": f"Bearer {trio.phones_key}"}) as ws:
                events = EventReader(ws)
                created = await events.until("session.created", 30)
                assert created["session"]["instructions"] == "Accepted through B."
                transcript = await events.until("conversation.item.input_audio_transcription.completed", 60)
                assert "time" in transcript["transcript"].lower(), transcript
                await wait_until_async(lambda: len(sink.packets) > 50, "A's RTP at the phone", 30)
                with sdk(trio.c, trio.phones_key) as on_c:
                    await asyncio.to_thread(on_c.realtime.calls.hangup, call_id)
                await sipp.finished()  # A said BYE, the phone answered 200
    finally:
        await sipp.kill()
        rtp.close()
    assert "webhook" not in trio.b.logs().lower() and "webhook" not in trio.c.logs().lower()


async def test_a_revoked_keys_relayed_sideband_ends_on_both_replicas(
    trio: Trio, peer: CallPeer, tmp_path: Path
) -> None:
    """A monitor on B of A's call whose key is revoked (the CLI, told to the cluster): A's socket
    sends the revoked error and closes 3000, B's relay passes both on and ends, the call stays."""
    config = tmp_path / "cli.json"
    cluster = {"redis_url": trio.redis.url, "key_prefix": PREFIX, "hop_secret": HOP_SECRET}
    config.write_text(json.dumps({"store_url": trio.store_url, "cluster": cluster}))
    monitor_key = await asyncio.to_thread(create_key, None, "alpha", config)
    with sdk(trio.a, trio.key) as on_a:
        call_id = await place_call(on_a, peer)
    await peer.until("session.created", 30)
    async with aiohttp.ClientSession() as session:
        url = ws_url(trio.b.api_base, call_id=call_id)
        async with session.ws_connect(url, headers={"Authorization": f"Bearer {monitor_key}"}) as ws:
            sideband = EventReader(ws)
            await sideband.until("session.created", 30)
            key_id = "key_" + monitor_key.split("-")[2]
            await asyncio.to_thread(cli, "keys", "revoke", key_id, "--config", str(config))
            error = await sideband.until("error", 30)
            assert error["error"]["code"] == "invalid_api_key" and "revoked" in error["error"]["message"]
            while (message := await ws.receive(timeout=30)).type == aiohttp.WSMsgType.TEXT:
                pass  # what was in flight before the close
            assert message.type == aiohttp.WSMsgType.CLOSE
            assert (ws.close_code, message.extra) == (3000, "the API key was revoked")  # A's, via B
    peer.send({"type": "session.update", "session": {"type": "realtime", "instructions": "call stays"}})
    assert (await peer.until("session.updated", 30))["session"]["instructions"] == "call stays"
    with sdk(trio.pick(), trio.key) as anywhere:
        raw = await asyncio.to_thread(anywhere.realtime.calls.with_raw_response.hangup, call_id)
    assert raw.status_code == 200


async def test_a_call_whose_replica_is_gone_is_not_found(trio: Trio, peer: CallPeer) -> None:
    """Last in this module: it kills A. Its call, asked for through B, is 503 `replica_unavailable`
    (retry) while A's lease still lives, then 404 `call_not_found` on the survivors once it expired."""
    with sdk(trio.a, trio.key) as on_a:
        call_id = await place_call(on_a, peer)
    await peer.until("session.created", 30)
    assert trio.a.proc is not None
    trio.a.proc.kill()
    await asyncio.to_thread(trio.a.proc.wait, 10)
    url = f"{trio.b.api_base}/realtime/calls/{call_id}/hangup"
    first = await asyncio.to_thread(http, "POST", url, key=trio.key)
    assert first.status == 503, first.body  # A's lease (3 s, renewed every second) outlives the kill
    assert first.json()["error"]["code"] == "replica_unavailable"
    assert first.headers["retry-after"] == "1"
    unreachable = 'ovos_realtime_cluster_forwards_total{kind="control",result="unreachable"}'
    assert await asyncio.to_thread(metric, trio.b, unreachable) >= 1

    async def not_found() -> bool:
        answer = await asyncio.to_thread(http, "POST", url, key=trio.key)
        assert answer.status in (503, 404), answer.body
        return answer.status == 404 and answer.json()["error"]["code"] == "call_not_found"

    await wait_until_async(not_found, "A's call not found once its lease expired", 30)
    async with aiohttp.ClientSession() as session:
        sideband = ws_url(trio.c.api_base, call_id=call_id)
        async with session.ws_connect(sideband, headers={"Authorization": f"Bearer {trio.key}"}) as ws:
            error = await EventReader(ws).next(30)
            assert error["error"]["code"] == "call_not_found", error
