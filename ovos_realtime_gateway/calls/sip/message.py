"""SIP messages (RFC 3261 §7) as far as a UDP trunk needs: parse, build responses, encode."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

COMPACT = {
    "i": "call-id",
    "f": "from",
    "t": "to",
    "v": "via",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "r": "refer-to",
}
MAX_MESSAGE_BYTES = 65_535


class SipParseError(ValueError):
    pass


@dataclass
class SipMessage:
    start: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return not self.start.startswith("SIP/2.0 ")

    @property
    def method(self) -> str:
        return self.start.split(" ", 1)[0] if self.is_request else self.cseq[1]

    @property
    def uri(self) -> str:
        return self.start.split(" ")[1]

    @property
    def status(self) -> int:
        return int(self.start.split(" ")[1])

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    def all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [v for k, v in self.headers if k.lower() == wanted]

    @property
    def call_id(self) -> str:
        return self.header("call-id") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = (self.header("cseq") or "0 ?").partition(" ")
        return int(number), method.strip()

    def encode(self) -> bytes:
        lines = [self.start]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() != "content-length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def parse(data: bytes) -> SipMessage:
    """One SIP message from a datagram (raises SipParseError when it is not one)."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError("message too large")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("headers are not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    start = lines[0].strip()
    parts = start.split(" ")
    if len(parts) < 3 or not (parts[0] == "SIP/2.0" or parts[2] == "SIP/2.0"):
        raise SipParseError(f"not a SIP start line: {start[:80]!r}")
    if parts[0] == "SIP/2.0" and not parts[1].isdigit():
        raise SipParseError("bad status code")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # folded continuation
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise SipParseError(f"bad header line: {line[:80]!r}")
        name = name.strip()
        headers.append((COMPACT.get(name.lower(), name), value.strip()))
    message = SipMessage(start, headers, body)
    length = message.header("content-length")
    if length is not None:
        if not length.isdigit() or int(length) > len(body):
            raise SipParseError("Content-Length does not match the body")
        message.body = body[: int(length)]
    for required in ("call-id", "cseq", "from", "to", "via"):
        if message.header(required) is None:
            raise SipParseError(f"missing {required} header")
    return message


def tag_of(header: str) -> str | None:
    for param in header.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "tag":
            return value
    return None


def uri_of(header: str) -> str:
    """The URI of a From/To/Contact/Refer-To value (`"Name" <sip:a@b>;tag=x` → `sip:a@b`)."""
    if "<" in header:
        return header.split("<", 1)[1].split(">", 1)[0]
    return header.split(";", 1)[0].strip()


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


REASONS = {
    100: "Trying",
    180: "Ringing",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    603: "Decline",
}


def response(
    request: SipMessage,
    status: int,
    *,
    to_tag: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> SipMessage:
    """A response to `request` (RFC 3261 §8.2.6): its Vias, From, Call-ID and CSeq, our To tag."""
    to = request.header("to") or ""
    if to_tag is not None and tag_of(to) is None:
        to = f"{to};tag={to_tag}"
    out = [("Via", v) for v in request.all("via")]
    out += [
        ("From", request.header("from") or ""),
        ("To", to),
        ("Call-ID", request.call_id),
        ("CSeq", request.header("cseq") or ""),
    ]
    out += headers or []
    reason = REASONS.get(status, "Unknown")
    return SipMessage(f"SIP/2.0 {status} {reason}", out, body)
