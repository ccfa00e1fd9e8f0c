"""One WebRTC call: an aiortc peer connection in front of the session engine.

Events travel as JSON on the `oai-events` data channel the caller opens; the caller's audio
track is decoded and fed to the engine; the assistant's voice plays on `PlayoutTrack`.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdatachannel import RTCDataChannel

from ..engine.responder import Responder
from ..security.auth import Principal
from ..services import GatewayServices
from ..settings import IceServer
from ..store import SessionRecord
from ..transports.outbox import Outbox
from .call import OUTBOX_EVENTS, Call, log
from .media import FRAME_SAMPLES, PLAYOUT_RATE, PlayoutTrack, read_track

EVENTS_CHANNEL = "oai-events"


def rtc_configuration(servers: tuple[IceServer, ...]) -> RTCConfiguration:
    """Only the servers configured: aiortc's default would contact Google's STUN server."""
    return RTCConfiguration(
        iceServers=[
            # aiortc types `urls` as str but takes a list, as the browser does
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)  # type: ignore[arg-type]  # aiortc declares list[str] | str; a tuple's list is fine
            for s in servers
        ]
    )


class WebRtcCall(Call):
    transport = "webrtc"

    def __init__(
        self,
        call_id: str,
        services: GatewayServices,
        principal: Principal,
        record: SessionRecord,
        responder: Responder,
    ) -> None:
        super().__init__(call_id, services, principal, PLAYOUT_RATE, FRAME_SAMPLES)
        self.record = record
        self.responder = responder
        self.pc = RTCPeerConnection(rtc_configuration(services.secrets.ice_servers()))
        services.metrics.peer_connections.inc()
        self.outbox = Outbox(OUTBOX_EVENTS)
        self.track = PlayoutTrack(self.playout)
        self._channel: RTCDataChannel | None = None
        self._channel_open = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def answer(self, offer_sdp: str) -> str:
        """Apply the offer, attach the playout track, and return the SDP answer (ICE gathered)."""
        pc = self.pc
        pc.on("datachannel", self._on_datachannel)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_connection_state)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        pc.addTrack(self.track)
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        return str(pc.localDescription.sdp)

    def start(self) -> None:
        """Begin the session: `session.created` waits on the data channel; the connect timer runs."""
        self.open_session(self.record, self.responder)
        self._writer = self.spawn(self._write_channel(), "writer")
        self.spawn(self._watch_connect(), "connect-timer")

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != EVENTS_CHANNEL or self._channel is not None:
            return
        self._channel = channel
        channel.on("message", self.submit)
        if channel.readyState == "open":
            self._channel_open.set()
        else:
            channel.on("open", self._channel_open.set)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self.spawn(read_track(track, self.caller_audio), "inbound")

    async def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self.connected.set()
        elif state in ("failed", "closed"):
            self.end(f"connection_{state}")

    async def _write_channel(self) -> None:
        assert self.outbox is not None
        await self._channel_open.wait()
        while True:
            frame = await self.outbox.get()
            if frame is None or self._channel is None or self._channel.readyState != "open":
                return
            self._channel.send(frame)

    async def _watch_connect(self) -> None:
        timeout = self.services.settings.call_connect_timeout_seconds
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.connected.wait(), timeout)
            return
        log.info("call %s: media never connected within %.0f s; ending it", self.id, timeout)
        self.end("connect_timeout")

    async def drain_events(self) -> None:
        if self._writer is not None and self._channel_open.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._writer), 2.0)

    async def close_transport(self) -> None:
        self.track.stop()
        try:
            await self.pc.close()
        finally:
            self.services.metrics.peer_connections.dec()
