"""One SIP call: an INVITE held as incoming until the app accepts, rejects or it rings out; then a
dialog whose G.711 RTP is bridged to the session engine. Events go to sideband sockets only."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from ...engine.responder import Responder
from ...protocol import errors
from ...security.auth import Principal
from ...services import GatewayServices
from ...store import SessionRecord
from ..call import Call, log
from .message import SipMessage, new_branch, new_tag, response, uri_of
from .rtp import PACKET_SAMPLES, RtpEndpoint
from .sdp import MediaOffer, answer

if TYPE_CHECKING:
    from .server import SipServer

RATE = 8000
PACKET_S = PACKET_SAMPLES / RATE


class SipCall(Call):
    transport = "sip"

    def __init__(  # noqa: PLR0913
        self,
        call_id: str,
        services: GatewayServices,
        principal: Principal,
        server: SipServer,
        invite: SipMessage,
        source: tuple[str, int],
        offer: MediaOffer,
    ) -> None:
        super().__init__(call_id, services, principal, RATE, PACKET_SAMPLES)
        self.server = server
        self.invite = invite
        self.source = source
        self.offer = offer
        self.state = "incoming"  # → accepted | rejected | ended
        self.local_tag = new_tag()
        self.remote_target = uri_of(invite.header("contact") or invite.header("from") or "")
        self._cseq = 0
        self.rtp: RtpEndpoint | None = None
        self.final: SipMessage | None = None  # our final answer to the INVITE (resent on retransmits)
        self.acked = asyncio.Event()
        self.remote_hung_up = False

    @property
    def sip_call_id(self) -> str:
        return self.invite.call_id

    # -- the app's decisions -------------------------------------------------------------------

    async def accept(self, record: SessionRecord, responder: Responder) -> None:
        if self.state != "incoming":
            raise _not_incoming(self)
        self.state = "accepted"
        loop = asyncio.get_running_loop()
        endpoint = RtpEndpoint(self.offer.payload_type, lambda samples: self.caller_audio(samples, RATE))
        await loop.create_datagram_endpoint(lambda: endpoint, local_addr=(self.server.settings.host, 0))
        endpoint.remote = (self.offer.address, self.offer.port)
        self.rtp = endpoint
        record.config.setdefault("audio", {}).setdefault("input", {})["format"] = {
            "type": self.offer.session_format
        }
        record.config["audio"].setdefault("output", {})["format"] = {"type": self.offer.session_format}
        self.open_session(record, responder)
        body = answer(self.server.advertised_host, endpoint.local_port, self.offer.payload_type).encode()
        self.final = response(
            self.invite,
            200,
            to_tag=self.local_tag,
            headers=[("Contact", self.server.contact), ("Content-Type", "application/sdp")],
            body=body,
        )
        self.spawn(self.server.until_acked(self.final, self.source, self.acked), "ok-retransmit")
        self.spawn(self._send_audio(), "rtp-sender")

    async def reject(self, status: int) -> None:
        if self.state != "incoming":
            raise _not_incoming(self)
        self.state = "rejected"
        self.final = response(self.invite, status, to_tag=self.local_tag)
        self.server.answer_finally(self.invite.call_id, self.final, self.source)
        self.end("rejected")

    async def refer(self, target_uri: str) -> None:
        if self.state != "accepted":
            raise errors.ApiError(
                409,
                f"Call '{self.id}' is not connected; only a connected call can be transferred.",
                code="call_not_connected",
            )
        answer_ = await self.request(
            "REFER", [("Refer-To", f"<{target_uri}>"), ("Referred-By", self.server.contact)]
        )
        if answer_ is None or not 200 <= answer_.status < 300:
            got = "no answer" if answer_ is None else f"SIP {answer_.status}"
            raise errors.ApiError(
                409, f"The caller's side refused the transfer ({got}).", code="refer_failed"
            )
        self.end("referred")

    async def hangup(self) -> None:
        if self.state == "incoming":
            await self.reject(603)
        else:
            self.end("hangup")

    # -- SIP plumbing ----------------------------------------------------------------------------

    def ring(self) -> None:
        self.server.send(response(self.invite, 100), self.source)
        self.server.send(response(self.invite, 180, to_tag=self.local_tag), self.source)
        self.spawn(self._ring_timeout(), "ring-timeout")

    async def _ring_timeout(self) -> None:
        await asyncio.sleep(self.server.settings.ring_timeout_seconds)
        if self.state == "incoming":
            log.info("sip call %s: nobody accepted it within the ring timeout", self.id)
            self.state = "rejected"
            self.final = response(self.invite, 480, to_tag=self.local_tag)
            self.server.answer_finally(self.invite.call_id, self.final, self.source)
            self.end("ring_timeout")

    def retransmitted_invite(self) -> None:
        self.server.send(self.final or response(self.invite, 180, to_tag=self.local_tag), self.source)

    async def request(self, method: str, extra: list[tuple[str, str]]) -> SipMessage | None:
        """An in-dialog request to the caller; its final response, or None after timer F."""
        self._cseq += 1
        invite = self.invite
        headers = [
            (
                "Via",
                f"SIP/2.0/UDP {self.server.advertised_host}:{self.server.port};branch={new_branch()};rport",
            ),
            ("Max-Forwards", "70"),
            ("From", f"{invite.header('to')};tag={self.local_tag}"),
            ("To", invite.header("from") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{self._cseq} {method}"),
            ("Contact", self.server.contact),
            *extra,
        ]
        message = SipMessage(f"{method} {self.remote_target} SIP/2.0", headers)
        return await self.server.transact(message, self.source)

    async def _send_audio(self) -> None:
        """One 20 ms packet per tick (silence between answers), on the wall clock."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        ticks = 0
        while self.rtp is not None:
            self.rtp.send(self.playout.next_frame())
            ticks += 1
            await asyncio.sleep(max(0.0, start + ticks * PACKET_S - loop.time()))

    async def close_transport(self) -> None:
        if self.state == "incoming":  # still ringing as the gateway stops: decline, do not leave it hanging
            self.state = "rejected"
            self.final = response(self.invite, 503, to_tag=self.local_tag)
            self.server.answer_finally(self.invite.call_id, self.final, self.source)
        if self.state == "accepted" and not self.remote_hung_up:
            self.state = "ended"
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.request("BYE", []), 5.0)
        self.state = "ended" if self.state == "accepted" else self.state
        if self.rtp is not None:
            self.rtp.close()
            self.rtp = None
        self.server.forget(self)


def _not_incoming(call: SipCall) -> errors.ApiError:
    return errors.ApiError(
        409,
        f"Call '{call.id}' is {call.state}, not incoming: it can no longer be accepted or rejected.",
        code="call_not_incoming",
    )
