"""One WebRTC call: an aiortc peer connection in front of the same session engine as the WebSocket.

The caller's audio track is decoded, transcoded to the session's input format and appended like
`input_audio_buffer.append`; the assistant's audio leaves on `PlayoutTrack` instead of as
`response.output_audio.delta` events; every other event travels as JSON on the `oai-events` data
channel — and to any sideband WebSocket attached with `?call_id=`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdatachannel import RTCDataChannel

from ..audio import InputTranscoder, OutputTranscoder
from ..engine.responder import Responder
from ..engine.session import RealtimeSession, SessionOptions
from ..protocol import errors
from ..protocol.server_events import Event, error_event, event
from ..security.auth import Principal
from ..services import GatewayServices
from ..settings import IceServer
from ..store import SessionRecord
from ..transports.client_frames import CALL_EVENT_TYPES, apply_frame
from ..transports.outbox import Outbox
from ..transports.session_store import StoreHooks, record_fields
from .media import PLAYOUT_RATE, PlayoutTrack, read_track

log = logging.getLogger("ovos_realtime.calls")
EVENTS_CHANNEL = "oai-events"
OUTBOX_EVENTS = 2048
INBOX_ITEMS = 4096
APPEND_MS = 100  # caller audio reaches the engine in 100 ms appends, like a typical client
PLAYOUT_LEAD_MS = 200.0  # the engine runs this far ahead of what the caller hears


def rtc_configuration(servers: tuple[IceServer, ...]) -> RTCConfiguration:
    """Only the servers configured: aiortc's default would contact Google's STUN server."""
    return RTCConfiguration(
        iceServers=[
            # aiortc types `urls` as str but takes a list, as the browser does
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)  # type: ignore[arg-type]
            for s in servers
        ]
    )


class WebRtcCall:
    def __init__(
        self,
        call_id: str,
        services: GatewayServices,
        principal: Principal,
        record: SessionRecord,
        responder: Responder,
    ) -> None:
        self.id = call_id
        self.services = services
        self.principal = principal
        self.project_id = principal.project_id
        self.pc = RTCPeerConnection(rtc_configuration(services.settings.ice_servers))
        services.metrics.peer_connections.inc()
        self.outbox = Outbox(OUTBOX_EVENTS)
        self.sidebands: set[Outbox] = set()
        self.playout = PlayoutTrack(self._on_playout)
        self._store_hooks = StoreHooks(services, record, principal)
        self._record = record
        self.session = RealtimeSession(
            session_id=record.id,
            project_id=principal.project_id,
            config=record.config,
            expires_at=record.expires_at or 0,
            responder=responder,
            emit=self._emit,
            options=SessionOptions(
                queue_responses=services.settings.queue_responses,
                is_call=True,
                audio_lead_ms=PLAYOUT_LEAD_MS,
            ),
            hooks=self._store_hooks,
            vad=services.vad,
            stt=services.stt,
        )
        self._inbox: asyncio.Queue[str | bytes] = asyncio.Queue(INBOX_ITEMS)
        self._channel: RTCDataChannel | None = None
        self._channel_open = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._out_decoders: dict[str, InputTranscoder] = {}
        self._in_encoder: tuple[int, str, OutputTranscoder] | None = None
        self._in_pending = bytearray()
        self.connected = asyncio.Event()
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self._ending: asyncio.Task[None] | None = None
        self.on_end: Callable[[WebRtcCall], None] | None = None

    # -- setup --------------------------------------------------------------------------------

    async def answer(self, offer_sdp: str) -> str:
        """Apply the offer, attach the playout track, and return the SDP answer (ICE gathered)."""
        pc = self.pc
        pc.on("datachannel", self._on_datachannel)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_connection_state)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        pc.addTrack(self.playout)
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        return str(pc.localDescription.sdp)

    def start(self) -> None:
        """Begin the session: `session.created` waits on the data channel; the connect timer runs."""
        self.session.start()
        self._spawn(self._write_channel(), "writer")
        self._spawn(self._work(), "worker")
        self._spawn(self._watch_connect(), "connect-timer")
        self._spawn(self._watch_expiry(), "expiry")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"call-{name}-{self.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- peer connection events ----------------------------------------------------------------

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
            self._spawn(read_track(track, self._caller_audio), "inbound")

    async def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self.connected.set()
        elif state in ("failed", "closed"):
            self.end(f"connection_{state}")

    # -- client → engine -----------------------------------------------------------------------

    def submit(self, frame: str | bytes) -> None:
        """A client event from the data channel or a sideband socket, handled in arrival order."""
        try:
            self._inbox.put_nowait(frame)
        except asyncio.QueueFull:
            self.session.fail(
                errors.event_error(
                    "rate_limit_exceeded", "Too many events queued on this call; this one was dropped."
                )
            )

    async def _caller_audio(self, samples: npt.NDArray[np.int16], rate: int) -> None:
        fmt = self.session.input_format
        key = str(sorted(fmt.items()))
        if self._in_encoder is None or self._in_encoder[:2] != (rate, key):
            self._in_encoder = (rate, key, OutputTranscoder(rate, fmt))
            self._in_pending.clear()
        encoder = self._in_encoder[2]
        self._in_pending += encoder.feed(samples)
        if encoder.format.duration_ms(len(self._in_pending)) >= APPEND_MS:
            chunk = bytes(self._in_pending)
            self._in_pending.clear()
            with contextlib.suppress(asyncio.QueueFull):  # the engine is far behind: drop audio
                self._inbox.put_nowait(chunk)

    async def _work(self) -> None:
        while True:
            item = await self._inbox.get()
            if isinstance(item, bytes) and not self.session.closed:
                await self._append(item)
            elif isinstance(item, str):
                await apply_frame(self.session, item, CALL_EVENT_TYPES, self.services.metrics)
            if self.session.closed:
                self.end("session_closed")
                return

    async def _append(self, audio: bytes) -> None:
        try:
            await self.session.append_audio(audio)
        except errors.ApiError as exc:
            self.session.fail(exc)

    # -- engine → client -----------------------------------------------------------------------

    def _emit(self, ev: Event) -> None:
        kind = ev.get("type")
        if kind == "response.output_audio.delta":
            self._play(ev)
            return
        if kind == "output_audio_buffer.cleared":
            cut = self.playout.clear()
            if ev.get("response_id") is None and cut is not None:
                ev = dict(ev, response_id=cut)
        self._publish(ev)
        if kind == "response.done":
            self._response_done(ev["response"])

    def _publish(self, ev: Event) -> None:
        self.outbox.put(ev)
        for sideband in list(self.sidebands):
            sideband.put(ev)

    def _play(self, ev: Event) -> None:
        response_id = str(ev["response_id"])
        decoder = self._out_decoders.get(response_id)
        if decoder is None:
            decoder = self._out_decoders[response_id] = InputTranscoder(
                self.session.output_format, PLAYOUT_RATE
            )
        self.playout.push(response_id, decoder.feed(base64.b64decode(ev["delta"])))

    def _response_done(self, response: dict[str, Any]) -> None:
        response_id = str(response["id"])
        decoder = self._out_decoders.pop(response_id, None)
        if decoder is not None:
            self.playout.push(response_id, decoder.flush())
        details = response.get("status_details") or {}
        if response.get("status") == "cancelled" and details.get("reason") == "turn_detected":
            cut = self.playout.clear()
            if cut is not None:
                self._publish(event("output_audio_buffer.cleared", response_id=cut))
        self.playout.finish(response_id)

    def _on_playout(self, what: str, response_id: str) -> None:
        self._publish(event(f"output_audio_buffer.{what}", response_id=response_id))

    async def _write_channel(self) -> None:
        await self._channel_open.wait()
        while True:
            frame = await self.outbox.get()
            if frame is None or self._channel is None or self._channel.readyState != "open":
                return
            self._channel.send(frame)

    # -- sideband ------------------------------------------------------------------------------

    def attach(self, outbox: Outbox) -> None:
        """A sideband socket: it sees every event from now on, starting with the session."""
        outbox.put(event("session.created", session=self.session.rendered()))
        self.sidebands.add(outbox)

    def detach(self, outbox: Outbox) -> None:
        self.sidebands.discard(outbox)

    # -- ending --------------------------------------------------------------------------------

    async def _watch_connect(self) -> None:
        timeout = self.services.settings.call_connect_timeout_seconds
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.connected.wait(), timeout)
            return
        log.info("call %s: media never connected within %.0f s; ending it", self.id, timeout)
        self.end("connect_timeout")

    async def _watch_expiry(self) -> None:
        await asyncio.sleep(max(0.0, self.session.expires_at - time.time()))
        self._publish(
            error_event(errors.event_error("session_expired", "Your session hit its maximum duration."), None)
        )
        self.end("session_expired")

    def end(self, reason: str) -> asyncio.Task[None]:
        """End the call once (idempotent); the task completes when everything is released."""
        if self._ending is None:
            self.end_reason = reason
            self._ending = asyncio.get_running_loop().create_task(self._end(), name=f"call-end-{self.id}")
        return self._ending

    async def _end(self) -> None:
        current = asyncio.current_task()
        await self.session.close()
        self.outbox.close()
        for sideband in list(self.sidebands):
            sideband.close()
        self.sidebands.clear()
        writer = next((t for t in self._tasks if t.get_name().startswith("call-writer")), None)
        if writer is not None and self._channel_open.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), 2.0)
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        await asyncio.gather(*[t for t in self._tasks if t is not current], return_exceptions=True)
        self.playout.stop()
        try:
            await self.pc.close()
        except Exception:  # a half-negotiated connection may fail to close; it is gone either way
            log.debug("call %s: closing the peer connection failed", self.id, exc_info=True)
        self.services.metrics.peer_connections.dec()
        self.services.metrics.calls.labels(transport="webrtc", reason=self.end_reason or "ended").inc()
        await self.services.store.save_session(
            SessionRecord(
                **{
                    **record_fields(self._store_hooks.record),
                    "config": self.session.config,
                    "status": "closed",
                    "updated_at": int(time.time()),
                }
            )
        )
        await self._store_hooks.items_changed(self.session.conversation)
        self.ended.set()
        if self.on_end is not None:
            self.on_end(self)
