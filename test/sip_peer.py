"""SIP parties on raw loopback UDP sockets, for tests that must write messages sipp would not:
a phone whose Call-ID, tags and branch the test knows, and strangers that reuse them."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field


class SipPeer(asyncio.DatagramProtocol):
    """A UDP socket bound to `host` that sends to the gateway's SIP port and keeps what it gets."""

    def __init__(self, gateway_port: int) -> None:
        self.gateway = ("127.0.0.1", gateway_port)
        self.messages: asyncio.Queue[str] = asyncio.Queue()
        self.seen: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def bind(cls, host: str, gateway_port: int) -> SipPeer:
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(lambda: cls(gateway_port), local_addr=(host, 0))
        return peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # the base protocol's transport is typed BaseTransport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        text = data.decode("utf-8", errors="replace")
        self.seen.append(text)
        self.messages.put_nowait(text)

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def send(self, message: str) -> None:
        assert self.transport is not None
        self.transport.sendto(message.encode(), self.gateway)

    async def response(self, cseq: str, status: int | None = None, timeout: float = 15.0) -> str:
        """The next response to `cseq` ("1 INVITE"): with `status`, or else the first final one."""

        def wanted(text: str) -> bool:
            if not text.startswith("SIP/2.0 ") or header(text, "CSeq") != cseq:
                return False
            code = int(text.split(" ", 2)[1])
            return code == status if status is not None else code >= 200

        return await self._until(wanted, f"a response to {cseq}", timeout)

    async def request(self, method: str, timeout: float = 15.0) -> str:
        return await self._until(lambda text: text.startswith(f"{method} "), f"a {method}", timeout)

    async def _until(self, wanted: Callable[[str], bool], what: str, timeout: float) -> str:
        try:
            return await asyncio.wait_for(self._next(wanted), timeout)
        except asyncio.TimeoutError:
            starts = [m.splitlines()[0] for m in self.seen]
            raise AssertionError(f"no {what} within {timeout} s; got {starts}") from None

    async def _next(self, wanted: Callable[[str], bool]) -> str:
        while not wanted(text := await self.messages.get()):
            pass
        return text

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def header(message: str, name: str) -> str | None:
    for line in message.split("\r\n\r\n", 1)[0].splitlines()[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def to_tag(message: str) -> str:
    return (header(message, "To") or "").split(";tag=", 1)[1].split(";", 1)[0]


@dataclass
class PhoneCall:
    """The identifiers of one call a phone places, and the messages of its side of it."""

    phone: tuple[str, int]
    rtp_port: int = 9
    call_id: str = field(default_factory=lambda: secrets.token_hex(8) + "@phone")
    from_tag: str = field(default_factory=lambda: secrets.token_hex(4))
    branch: str = field(default_factory=lambda: "z9hG4bK" + secrets.token_hex(6))

    def _message(
        self, method: str, cseq: int, *, branch: str, from_tag: str, to_tag: str | None, body: str = ""
    ) -> str:
        host, port = self.phone
        to = "<sip:ovos@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
        lines = [
            f"{method} sip:ovos@127.0.0.1 SIP/2.0",
            f"Via: SIP/2.0/UDP {host}:{port};branch={branch}",
            f'From: "Kitchen phone" <sip:kitchen@{host}:{port}>;tag={from_tag}',
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:kitchen@{host}:{port}>",
            "Max-Forwards: 70",
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return "\r\n".join(lines) + "\r\n\r\n" + body

    def invite(self) -> str:
        sdp = (
            "v=0\r\no=kitchen 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {self.rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        )
        return self._message("INVITE", 1, branch=self.branch, from_tag=self.from_tag, to_tag=None, body=sdp)

    def cancel(self, *, branch: str | None = None, from_tag: str | None = None) -> str:
        """The CANCEL of the INVITE (RFC 3261 §9.1); `branch`/`from_tag` to forge a wrong one."""
        return self._message(
            "CANCEL", 1, branch=branch or self.branch, from_tag=from_tag or self.from_tag, to_tag=None
        )

    def ack(self, local_tag: str, *, branch: str | None = None) -> str:
        """The ACK of a final answer: the INVITE's `branch` for a non-2xx one, a new one for 200."""
        branch = branch or "z9hG4bK" + secrets.token_hex(6)
        return self._message("ACK", 1, branch=branch, from_tag=self.from_tag, to_tag=local_tag)

    def bye(self, local_tag: str, *, from_tag: str | None = None) -> str:
        branch = "z9hG4bK" + secrets.token_hex(6)
        return self._message("BYE", 2, branch=branch, from_tag=from_tag or self.from_tag, to_tag=local_tag)

    def options(self) -> str:
        return self._message("OPTIONS", 3, branch="z9hG4bKopt", from_tag=self.from_tag, to_tag=None)
