"""The SIP endpoint: UDP, server side of calls a trunk places (RFC 3261, as much as G.711 trunks use).

Every message from outside `sip.allowed_sources` is refused: a request gets 403 (an ACK, which
is never answered, is dropped), a response is dropped. An INVITE from an allowed source, admitted
by the policy and the rate limits, with a G.711 offer, becomes an incoming call: 100 Trying, 180
Ringing, the `realtime.call.incoming` webhook. The app then accepts (200 OK with our SDP), rejects
(its status), or lets it ring out (480). The caller's own CANCEL, BYE and ACK (dialog.py) end or
confirm it; those of anyone else get 481. We send BYE (hangup) and REFER (transfer).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from ...protocol import errors, ids
from ...security.auth import Principal
from ...security.policy_input import call_resource
from ...services import GatewayServices
from ...settings import SipSettings
from ...tasks import TaskSupervisor
from .call import SipCall
from .dialog import Address, acknowledges, cancels, in_dialog
from .message import SipMessage, SipParseError, parse, response
from .sdp import SdpError, parse_offer
from .webhook import deliver, incoming_call_event

log = logging.getLogger("ovos_realtime.sip")
TIMER_F = 32.0
SKIPPED_HEADERS = {"authorization", "proxy-authorization"}


@dataclass
class _FinalAnswer:
    """A final non-2xx answer to an INVITE, resent to its caller until ACKed."""

    message: SipMessage
    caller: Address
    acked: asyncio.Event = field(default_factory=asyncio.Event)


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
        self._finals: dict[str, _FinalAnswer] = {}  # by SIP Call-ID: answered, awaiting ACK
        # our requests awaiting their final response, with the address they were sent to
        self._pending: dict[tuple[str, int, str], tuple[asyncio.Future[SipMessage], Address]] = {}
        self.tasks = TaskSupervisor("sip")  # transactions in flight; cancelled on stop
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
        await self.tasks.close()
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython's selector datagram transport does not subclass asyncio.DatagramTransport
        self.transport = cast(asyncio.DatagramTransport, transport)

    def send(self, message: SipMessage, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(message.encode(), addr)

    # -- receiving -------------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.strip() == b"":
            return  # keep-alive
        try:
            message = parse(data)
        except SipParseError as exc:
            log.info("sip: dropped a malformed message from %s: %s", addr[0], exc)
            return
        if not self._allowed(addr[0]):
            self._refuse_outsider(message, addr)
        elif message.is_request:
            self.tasks.spawn(f"{message.method} {message.call_id}", self._on_request(message, addr))
        else:
            key = (message.call_id, message.cseq[0], message.cseq[1])
            future, sent_to = self._pending.get(key) or (None, None)
            if future is None or sent_to is None or sent_to[0] != addr[0]:
                log.debug("sip: dropped a response from %s that answers none of our requests", addr[0])
            elif not future.done() and message.status >= 200:
                future.set_result(message)

    def _allowed(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self._networks)

    def _refuse_outsider(self, message: SipMessage, addr: tuple[str, int]) -> None:
        what = message.method if message.is_request else f"a response ({message.status})"
        log.warning("sip: %s from %s refused (not in sip.allowed_sources)", what, addr[0])
        if message.is_request and message.method != "ACK":
            self.send(response(message, 403), addr)

    def _not_ours(self, request: SipMessage, addr: tuple[str, int], call: SipCall | None) -> None:
        """481 to a CANCEL or BYE that matches no call, or a call it does not belong to."""
        if call is not None:
            log.warning(
                "sip: %s from %s:%d does not come from call %s's caller; refused (481)",
                request.method,
                *addr,
                call.id,
            )
        self.send(response(request, 481), addr)

    async def _on_request(self, request: SipMessage, addr: tuple[str, int]) -> None:
        method = request.method
        call = self.calls.get(request.call_id)
        if method == "INVITE":
            final = self._finals.get(request.call_id)
            if call is not None:
                call.retransmitted_invite()  # a retransmission, or a re-INVITE: same answer, to the caller
            elif final is not None:
                self.send(final.message, final.caller)
            else:
                await self._on_invite(request, addr)
        elif method == "ACK":
            if call is not None and in_dialog(call.invite, call.local_tag, request, call.source, addr):
                call.acked.set()
            final = self._finals.get(request.call_id)
            if final is not None and acknowledges(final.message, request, final.caller, addr):
                final.acked.set()
        elif method == "BYE":
            if call is None or not in_dialog(call.invite, call.local_tag, request, call.source, addr):
                self._not_ours(request, addr, call)
                return
            self.send(response(request, 200), addr)
            call.remote_hung_up = True
            call.end("caller_hangup")
        elif method == "CANCEL":
            if call is None or not cancels(call.invite, request, call.source, addr):
                self._not_ours(request, addr, call)
                return
            self.send(response(request, 200), addr)
            if call.state == "incoming":
                call.state = "rejected"
                call.final = response(call.invite, 487, to_tag=call.local_tag)
                self.answer_finally(call.sip_call_id, call.final, call.source)
                call.end("caller_cancelled")
        elif method in ("OPTIONS", "NOTIFY", "INFO"):
            self.send(response(request, 200), addr)
        else:
            self.send(response(request, 501), addr)

    async def _on_invite(self, invite: SipMessage, addr: tuple[str, int]) -> None:
        drain = self.services.drain
        if drain.draining:  # stopping: the trunk tries another server (for as long as the drain lasts)
            retry = [("Retry-After", str(max(1, round(drain.remaining_seconds()))))]
            self.send(response(invite, 503, headers=retry), addr)
            return
        project, _ = await self.services.store.ensure_project(self.settings.project)
        trunk = Principal("sip_trunk", project.id, "sip_trunk")
        call_id = ids.call_id()
        try:
            await self._admit(trunk, "sip.invite", call_resource(call_id, project.id, "sip", remote=addr[0]))
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
        if await slots.try_acquire(project.id, trunk.credential_id) is not None:
            self.send(response(invite, 486), addr)
            return
        call = SipCall(call_id, self.services, trunk, self, invite, addr, offer)
        self.calls[invite.call_id] = call
        call.go_live()
        call.ring()
        headers = [(k, v) for k, v in invite.headers if k.lower() not in SKIPPED_HEADERS]
        if self.settings.webhook_url:
            event = incoming_call_event(call_id, headers)
            signing = self.services.secrets.webhook_signing()
            delivered = await deliver(self.settings.webhook_url, signing, event)
            if not delivered and call.state == "incoming":
                log.warning("sip call %s: the webhook was not delivered; declining", call_id)
                await call.reject(480)
        else:
            log.warning("sip call %s is ringing but no sip.webhook_url is set to announce it", call_id)

    # -- sending -------------------------------------------------------------------------------

    def answer_finally(self, sip_call_id: str, final: SipMessage, addr: tuple[str, int]) -> None:
        """A final non-2xx answer to an INVITE, resent until ACKed; remembered for retransmits."""
        answer = self._finals[sip_call_id] = _FinalAnswer(final, addr)
        self.send(final, addr)  # at once, even if the gateway is stopping; then timer G resends

        async def run() -> None:
            try:
                await self.until_acked(final, addr, answer.acked)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(answer.acked.wait(), TIMER_F)
            finally:
                self._finals.pop(sip_call_id, None)

        self.tasks.spawn(f"final {sip_call_id}", run())

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
        self._pending[key] = (future, addr)
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
