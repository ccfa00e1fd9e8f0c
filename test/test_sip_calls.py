"""SIP calls (issue 5): `sipp` (Debian's sip-tester) places real calls over loopback UDP. The
gateway announces each with a signed `realtime.call.incoming` webhook (verified here by the
`openai` SDK's own `webhooks.unwrap`); the app answers with the SDK's `calls.accept / reject /
refer / hangup`; RTP G.711 flows both ways (sipp streams a spoken question; a socket of this test
is the phone's media address and counts what the gateway sends).

Long because its tests share the sipp scenarios, the webhook receiver and the gateway fixtures."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import shutil
import socket
import sqlite3
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import openai
import pytest
from aiohttp import web

from ovos_realtime_gateway.audio import g711

from .gateway_process import GatewayProcess, cli, configured_gateway, create_key
from .realtime_helpers import EventReader, ws_url
from .sip_peer import PhoneCall, SipPeer, to_tag
from .speech import user_speech_pcm

pytestmark = pytest.mark.slow
SCENARIOS = Path(__file__).parent / "sip"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"ovos-realtime-test-webhook-secret").decode()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ulaw_wav(path: Path, pcm8k: bytes) -> None:
    """A μ-law WAV (format 7), the kind sipp's rtp_stream plays as PCMU."""
    data = g711.ulaw_encode(np.frombuffer(pcm8k, dtype="<i2"))
    fmt = struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8)
    path.write_bytes(
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


class RtpSink(asyncio.DatagramProtocol):
    """The phone's media address: what the gateway sends there."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append(data)


@dataclass
class Webhooks:
    url: str
    events: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    refused: list[str] = field(default_factory=list)


@pytest.fixture
async def webhooks() -> AsyncIterator[Webhooks]:
    verifier = openai.OpenAI(api_key="unused", webhook_secret=WEBHOOK_SECRET)
    received: asyncio.Queue[Any] = asyncio.Queue()
    refused: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.text()
        try:
            received.put_nowait(verifier.webhooks.unwrap(body, dict(request.headers)))
        except openai.InvalidWebhookSignatureError as exc:
            refused.append(str(exc))
            return web.Response(status=400)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hooks/openai", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # aiohttp's private server attribute, typed optional
    yield Webhooks(f"http://127.0.0.1:{port}/hooks/openai", received, refused)
    verifier.close()
    await runner.cleanup()


def sip_gateway(root: Path, name: str, **sip: Any) -> tuple[GatewayProcess, str, int]:
    port = free_udp_port()
    gateway, key = configured_gateway(
        root, {"sip": {"enabled": True, "port": port, "project": "phones", **sip}}, "phones", name
    )
    return gateway, key, port


class Sipp:
    def __init__(self, scenario: str, sip_port: int, tmp: Path, **keys: str) -> None:
        binary = shutil.which("sipp")
        if binary is None:
            pytest.fail("sipp is missing: scripts/install-system-deps installs sip-tester")
        # sipp substitutes -key values in messages but not in actions: the WAV path is written in
        script = tmp / scenario
        text = (SCENARIOS / scenario).read_text()
        script.write_text(text.replace("[question_wav]", keys.pop("question_wav", "/dev/null")))
        self.command = [
            binary,
            f"127.0.0.1:{sip_port}",
            "-sf",
            str(script),
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            str(free_udp_port()),
            "-mp",
            str(free_udp_port()),
            "-nostdin",
            "-timeout",
            "90s",
            "-timeout_error",
            "-trace_err",
            "-error_file",
            str(tmp / f"{scenario}.errors"),
        ]
        for name, value in {"rtp_port": "9", "codecs": "0 8", **keys}.items():
            self.command += ["-key", name, value]
        self.errors = tmp / f"{scenario}.errors"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> Sipp:
        self.process = await asyncio.create_subprocess_exec(
            *self.command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        return self

    async def finished(self, timeout: float = 60.0) -> None:
        assert self.process is not None
        code = await asyncio.wait_for(self.process.wait(), timeout)
        errors = self.errors.read_text() if self.errors.exists() else ""
        assert code == 0, f"sipp failed ({code}): {errors[-3000:]}"

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def incoming(webhooks: Webhooks, timeout: float = 15.0) -> Any:
    event = await asyncio.wait_for(webhooks.events.get(), timeout)
    assert event.type == "realtime.call.incoming"
    assert event.data.call_id.startswith("rtc_")
    return event


PCM16_24K = {"type": "audio/pcm", "rate": 24000}


@pytest.mark.parametrize("pcm16", [False, True], ids=["pcmu-session", "pcm16-session"])
async def test_a_phone_call_is_announced_accepted_heard_and_hung_up(
    tmp_path: Path, webhooks: Webhooks, pcm16: bool
) -> None:
    """The session's wire format is the call's codec, or (`pcm16`) a sideband switches it to
    24 kHz PCM: the call's audio is PCM inside either way (issue 14), and the call still works."""
    gateway, key, port = await asyncio.to_thread(
        sip_gateway, tmp_path, "sip-talk", webhook_url=webhooks.url, webhook_secret=WEBHOOK_SECRET
    )
    wav = tmp_path / "question.wav"
    lead_ms = 4000 if pcm16 else 1500  # the sideband's update lands before the caller speaks
    ulaw_wav(wav, user_speech_pcm("what time is it", 8000, lead_ms=lead_ms, tail_ms=1500))
    loop = asyncio.get_running_loop()
    sink = RtpSink()
    rtp, _ = await loop.create_datagram_endpoint(lambda: sink, local_addr=("127.0.0.1", 0))
    rtp_port = rtp.get_extra_info("sockname")[1]
    async with gateway:
        sdk = openai.OpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
        sipp = await Sipp(
            "talk_then_gateway_hangs_up.xml", port, tmp_path, rtp_port=str(rtp_port), question_wav=str(wav)
        ).start()
        try:
            event = await incoming(webhooks)
            headers = {h.name: h.value for h in event.data.sip_headers}
            assert headers["X-Caller-Note"] == "asks the time" and "kitchen" in headers["From"]
            call_id = event.data.call_id
            await asyncio.to_thread(
                sdk.realtime.calls.accept,
                call_id,
                type="realtime",
                instructions="Answer the phone kindly.",
                audio={"input": {"transcription": {"model": "whisper-1"}}},
            )
            async with aiohttp.ClientSession() as http_session:
                url = ws_url(gateway.api_base, call_id=call_id)
                async with http_session.ws_connect(url, headers={"Authorization": f"Bearer {key}"}) as ws:
                    events = EventReader(ws)
                    created = await events.until("session.created")
                    assert created["session"]["instructions"] == "Answer the phone kindly."
                    assert created["session"]["audio"]["input"]["format"]["type"] == "audio/pcmu"
                    if pcm16:
                        audio = {"input": {"format": PCM16_24K}, "output": {"format": PCM16_24K}}
                        update = {"type": "realtime", "audio": audio}
                        await ws.send_json({"type": "session.update", "session": update})
                        updated = await events.until("session.updated")
                        assert updated["session"]["audio"]["output"]["format"] == PCM16_24K
                    await events.until("input_audio_buffer.speech_started", 20)
                    transcript = await events.until(
                        "conversation.item.input_audio_transcription.completed", 30
                    )
                    assert "time" in transcript["transcript"].lower(), transcript
                    done = await events.until("response.done", 30)  # no OVOS here: failed, clearly
                    assert done["response"]["status_details"]["error"]["code"] == "responder_unavailable"
                    assert len(sink.packets) > 50, "the gateway's RTP reaches the phone"
                    assert all(p[1] & 0x7F == 0 for p in sink.packets), "PCMU, as negotiated"
                    await asyncio.to_thread(sdk.realtime.calls.hangup, call_id)
                    await sipp.finished()  # it got our BYE and answered 200
                    message = await ws.receive(timeout=10)
                    while message.type == aiohttp.WSMsgType.TEXT:
                        message = await ws.receive(timeout=10)
                    assert ws.close_code == 1000
        finally:
            await sipp.kill()
            rtp.close()
            sdk.close()
    assert not webhooks.refused


async def test_calls_are_rejected_transferred_and_refused(tmp_path: Path, webhooks: Webhooks) -> None:
    gateway, key, port = await asyncio.to_thread(
        sip_gateway, tmp_path, "sip-control", webhook_url=webhooks.url, webhook_secret=WEBHOOK_SECRET
    )
    async with gateway:
        sdk = openai.OpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
        stranger = openai.OpenAI(
            base_url=gateway.api_base,
            api_key=(await asyncio.to_thread(create_key, gateway.data_dir, "other")),
            max_retries=0,
        )
        try:
            # the app rejects with its own SIP status
            sipp = await Sipp("refused_486.xml", port, tmp_path).start()
            call_id = (await incoming(webhooks)).data.call_id
            with pytest.raises(openai.NotFoundError):  # another project cannot touch it
                await asyncio.to_thread(stranger.realtime.calls.reject, call_id)
            await asyncio.to_thread(sdk.realtime.calls.reject, call_id, status_code=486)
            await sipp.finished()
            with pytest.raises(openai.NotFoundError):
                await asyncio.to_thread(sdk.realtime.calls.accept, call_id, type="realtime")

            # transferred: REFER with the target, then our BYE
            sipp = await Sipp("transferred.xml", port, tmp_path).start()
            call_id = (await incoming(webhooks)).data.call_id
            await asyncio.to_thread(sdk.realtime.calls.accept, call_id, type="realtime")
            with pytest.raises(openai.ConflictError):  # accepted already
                await asyncio.to_thread(sdk.realtime.calls.reject, call_id)
            await asyncio.to_thread(sdk.realtime.calls.refer, call_id, target_uri="tel:+15551234567")
            await sipp.finished()

            # no G.711 in the offer: 488 at once, no webhook
            sipp = await Sipp("refused_488.xml", port, tmp_path, codecs="9").start()
            await sipp.finished()
            assert webhooks.events.empty()
        finally:
            sdk.close()
            stranger.close()
    assert not webhooks.refused
    done = await asyncio.to_thread(_audited, gateway.data_dir, "calls.accept", "calls.reject", "calls.refer")
    assert [row for row in done if row[1:] == ("allowed", 200)] == [
        ("calls.reject", "allowed", 200),
        ("calls.accept", "allowed", 200),
        ("calls.refer", "allowed", 200),
    ], done


def _audited(data_dir: Path, *actions: str) -> list[tuple[str, str, int]]:
    """The audit rows of these actions (action, decision, status), oldest first."""
    with contextlib.closing(sqlite3.connect(data_dir / "ovos-realtime.db")) as db:
        marks = ", ".join("?" * len(actions))
        query = f"select action, decision, status from audit_log where action in ({marks}) order by ts, rowid"
        return db.execute(query, actions).fetchall()


async def test_unannounced_and_unwelcome_calls_are_declined(tmp_path: Path) -> None:
    # nobody to announce it to: it rings out (480) — after garbage, which loses nothing
    gateway, _, port = await asyncio.to_thread(sip_gateway, tmp_path, "sip-ringout", ring_timeout_seconds=1)
    async with gateway:
        answers = await asyncio.to_thread(send_datagrams, port, MALFORMED + [OPTIONS, BYE_UNKNOWN])
        assert answers[-2].startswith(b"SIP/2.0 200 OK"), answers
        assert answers[-1].startswith(b"SIP/2.0 481 "), answers
        assert len(answers) == 2, "malformed messages are dropped without an answer"
        await (await Sipp("refused_480.xml", port, tmp_path).start()).finished()
    # an INVITE from outside sip.allowed_sources: 403
    gateway, _, port = await asyncio.to_thread(
        sip_gateway, tmp_path, "sip-closed", allowed_sources=["10.0.0.0/8"]
    )
    async with gateway:
        await (await Sipp("refused_403.xml", port, tmp_path).start()).finished()


# 127.0.0.2 and 127.0.0.3 are loopback addresses too: an outsider, and another allowed trunk
TWO_TRUNKS = ["127.0.0.1/32", "127.0.0.3/32"]


async def _strangers_are_refused(port: int, call: PhoneCall, forged: list[tuple[str, str]]) -> None:
    """Every request from outside sip.allowed_sources gets 403; the `forged` ones (message,
    CSeq), sent by another allowed trunk, get 481. None of them reaches the call."""
    outsider = await SipPeer.bind("127.0.0.2", port)
    neighbour = await SipPeer.bind("127.0.0.3", port)
    try:
        for message, cseq in [*forged, (call.options(), "3 OPTIONS")]:
            outsider.send(message)
            assert (await outsider.response(cseq)).startswith("SIP/2.0 403 "), cseq
        for message, cseq in forged:
            neighbour.send(message)
            assert (await neighbour.response(cseq)).startswith("SIP/2.0 481 "), cseq
        for peer in (outsider, neighbour):
            assert not any(m.startswith(("SIP/2.0 487", "SIP/2.0 200")) for m in peer.seen), peer.seen
    finally:
        outsider.close()
        neighbour.close()


async def test_only_the_caller_can_cancel_a_ringing_call(tmp_path: Path) -> None:
    gateway, _, port = await asyncio.to_thread(
        sip_gateway, tmp_path, "sip-cancel", allowed_sources=TWO_TRUNKS
    )
    async with gateway:
        phone = await SipPeer.bind("127.0.0.1", port)
        call = PhoneCall(phone.address)
        try:
            phone.send(call.invite())
            await phone.response("1 INVITE", 180)
            await _strangers_are_refused(port, call, [(call.cancel(), "1 CANCEL")])
            # the caller's host, but not its INVITE transaction: 481
            same_host = await SipPeer.bind("127.0.0.1", port)
            for forged in (call.cancel(branch="z9hG4bKguessed"), call.cancel(from_tag="guessed")):
                same_host.send(forged)
                assert (await same_host.response("1 CANCEL")).startswith("SIP/2.0 481 ")
            same_host.close()
            # the call still rings: the caller's own CANCEL ends it, with 487 for the INVITE
            phone.send(call.cancel())
            assert (await phone.response("1 CANCEL")).startswith("SIP/2.0 200 ")
            terminated = await phone.response("1 INVITE")
            assert terminated.startswith("SIP/2.0 487 "), terminated
            phone.send(call.ack(to_tag(terminated), branch=call.branch))
        finally:
            phone.close()
    logs = gateway.logs()
    assert "CANCEL from 127.0.0.2 refused (not in sip.allowed_sources)" in logs
    assert "OPTIONS from 127.0.0.2 refused (not in sip.allowed_sources)" in logs
    assert "CANCEL from 127.0.0.3" in logs and "does not come from call rtc_" in logs


@dataclass
class ConnectedCall:
    phone: SipPeer
    call: PhoneCall
    call_id: str
    local_tag: str


@contextlib.asynccontextmanager
async def connected_call(
    gateway: GatewayProcess, port: int, webhooks: Webhooks, key: str
) -> AsyncIterator[ConnectedCall]:
    """A raw-UDP phone calls the gateway, the app accepts with `key` (the SDK), the phone ACKs."""
    loop = asyncio.get_running_loop()
    rtp, _ = await loop.create_datagram_endpoint(RtpSink, local_addr=("127.0.0.1", 0))
    sdk = openai.OpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
    phone = await SipPeer.bind("127.0.0.1", port)
    call = PhoneCall(phone.address, rtp_port=rtp.get_extra_info("sockname")[1])
    try:
        phone.send(call.invite())
        call_id = (await incoming(webhooks)).data.call_id
        await asyncio.to_thread(sdk.realtime.calls.accept, call_id, type="realtime")
        ok = await phone.response("1 INVITE")
        assert ok.startswith("SIP/2.0 200 "), ok
        local_tag = to_tag(ok)
        phone.send(call.ack(local_tag))
        yield ConnectedCall(phone, call, call_id, local_tag)
    finally:
        phone.close()
        rtp.close()
        sdk.close()


async def test_only_the_caller_can_hang_up_a_connected_call(tmp_path: Path, webhooks: Webhooks) -> None:
    gateway, key, port = await asyncio.to_thread(
        sip_gateway,
        tmp_path,
        "sip-bye",
        webhook_url=webhooks.url,
        webhook_secret=WEBHOOK_SECRET,
        allowed_sources=TWO_TRUNKS,
    )
    async with gateway:
        async with connected_call(gateway, port, webhooks, key) as connected:
            phone, call, local_tag = connected.phone, connected.call, connected.local_tag
            await _strangers_are_refused(port, call, [(call.bye(local_tag), "2 BYE")])
            # the caller's host, but not its dialog: 481
            same_host = await SipPeer.bind("127.0.0.1", port)
            for forged in (call.bye("guessed"), call.bye(local_tag, from_tag="guessed")):
                same_host.send(forged)
                assert (await same_host.response("2 BYE")).startswith("SIP/2.0 481 ")
            same_host.close()
            # the call is still connected: the caller's own BYE ends it
            phone.send(call.bye(local_tag))
            assert (await phone.response("2 BYE")).startswith("SIP/2.0 200 ")
    assert "BYE from 127.0.0.2 refused (not in sip.allowed_sources)" in gateway.logs()


async def test_revoking_the_key_that_accepted_a_call_hangs_it_up(tmp_path: Path, webhooks: Webhooks) -> None:
    """`keys revoke` reaches a connected phone call: the gateway says BYE to the caller."""
    gateway, _, port = await asyncio.to_thread(
        sip_gateway, tmp_path, "sip-revoke", webhook_url=webhooks.url, webhook_secret=WEBHOOK_SECRET
    )
    async with gateway:
        operator = await asyncio.to_thread(create_key, gateway.data_dir, "phones")
        async with connected_call(gateway, port, webhooks, operator) as connected:
            (
                await asyncio.to_thread(
                    cli, "keys", "revoke", "key_" + operator.split("-")[2], data_dir=gateway.data_dir
                )
            )
            bye = await connected.phone.request("BYE", timeout=30)
            assert bye.startswith("BYE "), bye
    logs = gateway.logs()
    assert f"call {connected.call_id}: key" in logs and "was revoked; ending the call" in logs


HEADERS = (
    "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKx\r\n"
    "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\n"
)
MALFORMED = [
    b"",
    b"\x00\xff" * 100,
    b"INVITE",
    b"HELLO sip:x SIP/2.0\r\n\r\n",  # no Call-ID, CSeq, ...
    b"SIP/2.0 abc OK\r\n\r\n",
    (
        "INVITE sip:b@127.0.0.1 SIP/2.0\r\n" + HEADERS + "Call-ID: c1\r\nCSeq: 1 INVITE\r\n"
        "Content-Length: 9999\r\n\r\nv=0"
    ).encode(),
    b"OPTIONS sip:b SIP/2.0\r\nbroken header line\r\n\r\n",
    b"\xff" * 65_000,
]
OPTIONS = (
    "OPTIONS sip:b@127.0.0.1 SIP/2.0\r\n" + HEADERS + "Call-ID: o1\r\nCSeq: 1 OPTIONS\r\n\r\n"
).encode()
BYE_UNKNOWN = ("BYE sip:b@127.0.0.1 SIP/2.0\r\n" + HEADERS + "Call-ID: nope\r\nCSeq: 2 BYE\r\n\r\n").encode()


def send_datagrams(port: int, datagrams: list[bytes]) -> list[bytes]:
    """Send each datagram to the SIP port; every answer that comes back within a second."""
    answers: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(1.0)
        for datagram in datagrams:
            sock.sendto(datagram, ("127.0.0.1", port))
        with contextlib.suppress(TimeoutError):
            while True:
                answers.append(sock.recv(65_535))
    return answers


def test_webhook_secret_signs_like_openai() -> None:
    """The signature the SDK verifies, computed independently of the gateway's code path."""
    from ovos_realtime_gateway.calls.sip.webhook import signature

    body = json.dumps({"id": "evt_1"})
    verifier = openai.OpenAI(api_key="unused", webhook_secret=WEBHOOK_SECRET)
    import time

    now = int(time.time())
    headers = {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(now),
        "webhook-signature": signature(WEBHOOK_SECRET, "evt_1", now, body),
    }
    verifier.webhooks.verify_signature(body, headers)
    headers["webhook-signature"] = signature(
        "whsec_" + base64.b64encode(secrets.token_bytes(16)).decode(), "evt_1", now, body
    )
    with pytest.raises(openai.InvalidWebhookSignatureError):
        verifier.webhooks.verify_signature(body, headers)
    verifier.close()
