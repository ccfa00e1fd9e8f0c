"""The SDP of a G.711 phone call: what the caller offers, what we answer."""

from __future__ import annotations

import time
from dataclasses import dataclass

G711 = {0: "audio/pcmu", 8: "audio/pcma"}
NAMES = {"pcmu": 0, "pcma": 8}


@dataclass(frozen=True)
class MediaOffer:
    address: str
    port: int
    payload_type: int  # the first G.711 codec of the offer, in its order of preference

    @property
    def session_format(self) -> str:
        return G711[self.payload_type]


class SdpError(ValueError):
    pass


def parse_offer(sdp: str) -> MediaOffer:
    """The caller's RTP address and preferred G.711 codec (SdpError when there is none)."""
    address: str | None = None
    media_address: str | None = None
    port: int | None = None
    formats: list[int] = []
    rtpmap: dict[int, str] = {}
    in_audio = False
    for raw in sdp.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if line.startswith("c=IN IP4 "):
            if in_audio:
                media_address = line[9:].split("/")[0].strip()
            else:
                address = line[9:].split("/")[0].strip()
        elif line.startswith("m="):
            fields = line[2:].split()
            in_audio = fields[0] == "audio" and port is None
            if in_audio:
                if len(fields) < 4 or not fields[1].isdigit():
                    raise SdpError("malformed audio media line")
                port = int(fields[1])
                formats = [int(f) for f in fields[3:] if f.isdigit()]
        elif in_audio and line.startswith("a=rtpmap:"):
            number, _, name = line[9:].partition(" ")
            if number.isdigit():
                rtpmap[int(number)] = name.split("/")[0].lower()
    if port is None or port == 0:
        raise SdpError("the offer has no audio")
    where = media_address or address
    if where is None:
        raise SdpError("the offer has no connection address")
    for fmt in formats:
        codec = rtpmap.get(fmt)
        if fmt in G711 and (codec is None or NAMES.get(codec) == fmt):
            return MediaOffer(where, port, fmt)
        if codec is not None and codec in NAMES:
            return MediaOffer(where, port, NAMES[codec])
    raise SdpError("the offer has no G.711 codec (PCMU or PCMA)")


def answer(address: str, port: int, payload_type: int) -> str:
    name = "PCMU" if payload_type == 0 else "PCMA"
    version = int(time.time())
    return (
        f"v=0\r\no=ovos-realtime {version} {version} IN IP4 {address}\r\ns=ovos-realtime\r\n"
        f"c=IN IP4 {address}\r\nt=0 0\r\nm=audio {port} RTP/AVP {payload_type}\r\n"
        f"a=rtpmap:{payload_type} {name}/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    )
