"""RTP (RFC 3550) for one G.711 call: receive and decode, encode and send 20 ms packets."""

from __future__ import annotations

import asyncio
import secrets
import struct
from collections.abc import Callable
from typing import cast

import numpy as np
import numpy.typing as npt

from ...audio import g711

HEADER = struct.Struct("!BBHII")
PACKET_SAMPLES = 160  # 20 ms at 8 kHz


def decode_payload(payload_type: int, payload: bytes) -> npt.NDArray[np.int16]:
    return g711.ulaw_decode(payload) if payload_type == 0 else g711.alaw_decode(payload)


def encode_payload(payload_type: int, samples: npt.NDArray[np.int16]) -> bytes:
    return g711.ulaw_encode(samples) if payload_type == 0 else g711.alaw_encode(samples)


def parse_packet(data: bytes) -> tuple[int, bytes] | None:
    """(payload type, payload) of an RTP packet, or None for anything else."""
    if len(data) < HEADER.size:
        return None
    first, second, _, _, _ = HEADER.unpack_from(data)
    if first >> 6 != 2:
        return None
    offset = HEADER.size + 4 * (first & 0x0F)
    if first & 0x10:  # header extension
        if len(data) < offset + 4:
            return None
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
    end = len(data)
    if first & 0x20 and end > offset:  # padding
        end -= data[-1]
    if end < offset:
        return None
    return second & 0x7F, data[offset:end]


class RtpEndpoint(asyncio.DatagramProtocol):
    """One call's RTP socket: decoded G.711 in (from anyone who sends it), packets out to the caller."""

    def __init__(self, payload_type: int, on_audio: Callable[[npt.NDArray[np.int16]], None]) -> None:
        self.payload_type = payload_type
        self._on_audio = on_audio
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None
        self._ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._timestamp = secrets.randbits(32)
        self._first = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython's selector datagram transport does not subclass asyncio.DatagramTransport
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        parsed = parse_packet(data)
        if parsed is None or parsed[0] != self.payload_type or not parsed[1]:
            return  # not ours (RTCP, DTMF events, another codec): dropped
        self._on_audio(decode_payload(self.payload_type, parsed[1]))

    def send(self, samples: npt.NDArray[np.int16]) -> None:
        if self.transport is None or self.remote is None:
            return
        marker = 0x80 if self._first else 0
        self._first = False
        header = HEADER.pack(0x80, marker | self.payload_type, self._seq, self._timestamp, self._ssrc)
        self.transport.sendto(header + encode_payload(self.payload_type, samples), self.remote)
        self._seq = (self._seq + 1) & 0xFFFF
        self._timestamp = (self._timestamp + len(samples)) & 0xFFFFFFFF

    @property
    def local_port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
