"""The SIP endpoint: UDP, server side of calls a trunk places (RFC 3261, as much as G.711 trunks use).

An INVITE from an allowed source, admitted by the policy and the rate limits, with a G.711 offer,
becomes an incoming call: 100 Trying, 180 Ringing, the `realtime.call.incoming` webhook. The
app then accepts (200 OK with our SDP), rejects (its status), or lets it ring out (480). In a
dialog: BYE and CANCEL from the caller end it; we send BYE (hangup) and REFER (transfer).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any, cast

from ...protocol import errors, ids
from ...security.auth import Principal
from ...services import GatewayServices
from ...settings import SipSettings
from .call import SipCall
from .message import SipMessage, SipParseError, parse, response
from .sdp import SdpError, parse_offer
from .webhook import deliver, incoming_call_event

log = logging.getLogger("ovos_realtime.sip")
TIMER_F = 32.0
SKIPPED_HEADERS = {"authorization", "proxy-authorization"}


class SipServer(asyncio.DatagramProtocol):
    def __init__(
        self,
        services: GatewayServices,
        settings: SipSettings,
        admit: Callable[[Principal, str, dict[str, Any]], Any],
    ) -> None:
        self.services = services
        self.settings = settings
        self._admit = admit
        self.transport: asyncio.DatagramTransport | None = None
        self.port = settings.port
        self.advertised_host = settings.advertised_host or settings.host
        self.calls: dict[str, SipCall] = {}  # by SIP Call-ID
        self._finals: dict[str, tuple[SipMessage, asyncio.Event]] = {}  # answered, awaiting ACK
        self._pending: dict[tuple[str, int, str], asyncio.Future[SipMessage]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._networks = [ipaddress.ip_network(n, strict=False) for n in settings.allowed_sources]

    @property
    def contact(self) -> str:
        return f"<sip:ovos-realtime@{self.advertised_host}:{self.port}>"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.settings.host, self.settings.port))
        assert self.transport is not None
        self.port = int(self.transport.get_extra_info("sockname")[1])
        log.info("SIP listening on udp:%s:%d", self.settings.host, self.port)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython's selector datagram transport does not subclass asyncio.DatagramTransport
        self.transport = cast(asyncio.DatagramTransport, transport)

    def send(self, message: SipMessage, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(message.encode(), addr)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- receiving -------------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.strip() == b"":
            return  # keep-alive
        try:
            message = parse(data)
        except SipParseError as exc:
            log.info("sip: dropped a malformed message from %s: %s", addr[0], exc)
            return
        if message.is_request:
            self._spawn(self._on_request(message, addr))
        else:
            key = (message.call_id, message.cseq[0], message.cseq[1])
            waiting = self._pending.get(key)
            if waiting is not None and not waiting.done() and message.status >= 200:
                waiting.set_result(message)

    async def _on_request(self, request: SipMessage, addr: tuple[str, int]) -> None:
        method = request.method
        call = self.calls.get(request.call_id)
        if method == "INVITE":
            if call is not None:
                call.retransmitted_invite()  # a retransmission, or a re-INVITE: same answer
            elif request.call_id in self._finals:
                self.send(self._finals[request.call_id][0], addr)
            else:
                await self._on_invite(request, addr)
        elif method == "ACK":
            if call is not None:
                call.acked.set()
            final = self._finals.get(request.call_id)
            if final is not None:
                final[1].set()
        elif method == "BYE":
            if call is None:
                self.send(response(request, 481), addr)
                return
            self.send(response(request, 200), addr)
            call.remote_hung_up = True
            call.end("caller_hangup")
        elif method == "CANCEL":
            if call is None:
                self.send(response(request, 481), addr)
                return
            self.send(response(request, 200), addr)
            if call.state == "incoming":
                call.state = "rejected"
                call.final = response(call.invite, 487, to_tag=call.local_tag)
                self.answer_finally(call.sip_call_id, call.final, addr)
                call.end("caller_cancelled")
        elif method in ("OPTIONS", "NOTIFY", "INFO"):
            self.send(response(request, 200), addr)
        else:
            self.send(response(request, 501), addr)

    async def _on_invite(self, invite: SipMessage, addr: tuple[str, int]) -> None:
        if not any(ipaddress.ip_address(addr[0]) in net for net in self._networks):
            log.warning("sip: INVITE from %s refused (not in sip.allowed_sources)", addr[0])
            self.send(response(invite, 403), addr)
            return
        project, _ = await self.services.store.ensure_project(self.settings.project)
        trunk = Principal("sip_trunk", project.id, "sip_trunk")
        call_id = ids.call_id()
        try:
            await self._admit(trunk, "sip.invite", {"id": call_id, "remote": addr[0]})
        except errors.ApiError as exc:
            self.send(response(invite, 486 if exc.status == 429 else 403), addr)
            return
        try:
            offer = parse_offer(invite.body.decode("utf-8", errors="replace"))
        except SdpError as exc:
            log.info("sip: INVITE from %s not acceptable: %s", addr[0], exc)
            self.send(response(invite, 488), addr)
            return
        slots = self.services.session_slots
        if slots.try_acquire(project.id, trunk.credential_id) is not None:
            self.send(response(invite, 486), addr)
            return
        call = SipCall(call_id, self.services, trunk, self, invite, addr, offer)
        self.calls[invite.call_id] = call
        call.go_live()
        call.ring()
        headers = [(k, v) for k, v in invite.headers if k.lower() not in SKIPPED_HEADERS]
        if self.settings.webhook_url:
            event = incoming_call_event(call_id, headers)
            delivered = await deliver(self.settings.webhook_url, self.settings.webhook_secret, event)
            if not delivered and call.state == "incoming":
                log.warning("sip call %s: the webhook was not delivered; declining", call_id)
                await call.reject(480)
        else:
            log.warning("sip call %s is ringing but no sip.webhook_url is set to announce it", call_id)

    # -- sending -------------------------------------------------------------------------------

    def answer_finally(self, sip_call_id: str, final: SipMessage, addr: tuple[str, int]) -> None:
        """A final non-2xx answer to an INVITE, resent until ACKed; remembered for retransmits."""
        acked = asyncio.Event()
        self._finals[sip_call_id] = (final, acked)
        self.send(final, addr)  # at once, even if the gateway is stopping; then timer G resends

        async def run() -> None:
            try:
                await self.until_acked(final, addr, acked)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(acked.wait(), TIMER_F)
            finally:
                self._finals.pop(sip_call_id, None)

        self._spawn(run())

    async def until_acked(self, final: SipMessage, addr: tuple[str, int], acked: asyncio.Event) -> None:
        """Timer G: resend a final INVITE response (0.5 s, doubling to 4 s) until its ACK."""
        interval = 0.5
        deadline = time.monotonic() + TIMER_F
        while time.monotonic() < deadline:
            self.send(final, addr)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(acked.wait(), interval)
                return
            interval = min(interval * 2, 4.0)

    async def transact(self, request: SipMessage, addr: tuple[str, int]) -> SipMessage | None:
        """A non-INVITE request: resent (timer E) until a final response, None after timer F."""
        key = (request.call_id, request.cseq[0], request.cseq[1])
        future: asyncio.Future[SipMessage] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        interval = 0.5
        deadline = time.monotonic() + TIMER_F
        try:
            while time.monotonic() < deadline:
                self.send(request, addr)
                with contextlib.suppress(asyncio.TimeoutError):
                    return await asyncio.wait_for(asyncio.shield(future), interval)
                interval = min(interval * 2, 4.0)
            return None
        finally:
            self._pending.pop(key, None)

    def forget(self, call: SipCall) -> None:
        if self.calls.get(call.sip_call_id) is call:
            del self.calls[call.sip_call_id]
