"""A browser-like WebRTC peer for tests, built on aiortc (a real peer, not a mock).

It does what OpenAI's browser guide does: one microphone track (fed from PCM, paced in real
time, silence in between), the `oai-events` data channel, an SDP offer; it records the audio it
receives so tests can hear the assistant.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from typing import Any

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from ovos_realtime_gateway.tasks import TaskSupervisor

RATE = 48_000
FRAME = RATE // 50


class Microphone(MediaStreamTrack):
    """20 ms frames of whatever was `say`-queued, else silence."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pending = np.zeros(0, dtype=np.int16)
        self._start: float | None = None
        self._pts = 0

    def say(self, pcm48k: bytes) -> None:
        self._pending = np.concatenate([self._pending, np.frombuffer(pcm48k, dtype="<i2")])

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += FRAME
            await asyncio.sleep(max(0.0, self._start + self._pts / RATE - time.monotonic()))
        chunk = np.zeros(FRAME, dtype=np.int16)
        take = min(FRAME, len(self._pending))
        chunk[:take] = self._pending[:take]
        self._pending = self._pending[take:]
        frame = AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


class CallPeer:
    def __init__(self, *, audio: bool = True, channel: bool = True, codec: str | None = None) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.seen: list[dict[str, Any]] = []
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._open = asyncio.Event()
        self.microphone = Microphone()
        self.heard: list[np.ndarray[Any, np.dtype[np.int16]]] = []
        self._tasks = TaskSupervisor("call-peer")
        if channel:
            self.channel = self.pc.createDataChannel("oai-events")
            self.channel.on("open", self._open.set)
            self.channel.on("message", self._message)
        if audio:
            self.pc.addTrack(self.microphone)
            if codec is not None:  # offer only this codec, e.g. "audio/PCMU" (a telephony-minded client)
                capabilities = RTCRtpSender.getCapabilities("audio")  # type: ignore[no-untyped-call]  # aiortc is untyped
                preferred = [c for c in capabilities.codecs if c.mimeType == codec]
                self.pc.getTransceivers()[0].setCodecPreferences(preferred)
        self.pc.on("track", self._track)

    def _message(self, message: str | bytes) -> None:
        self._events.put_nowait(json.loads(message))

    def _track(self, track: MediaStreamTrack) -> None:
        async def listen() -> None:
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                if isinstance(frame, AudioFrame):
                    data = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
                    self.heard.append(data.astype(np.int16))

        self._tasks.spawn(f"listen-{track.kind}", listen())

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer_sdp: str, timeout: float = 15.0) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        await asyncio.wait_for(self._open.wait(), timeout)

    def send(self, event: dict[str, Any]) -> None:
        self.channel.send(json.dumps(event))

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        event = await asyncio.wait_for(self._events.get(), timeout)
        self.seen.append(event)
        return event

    async def until(self, type_: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise asyncio.TimeoutError
                event = await self.next(left)
            except asyncio.TimeoutError:
                raise AssertionError(f"no {type_} within {timeout}s; seen {self.types()}") from None
            if event["type"] == type_:
                return event

    def types(self) -> list[str]:
        return [e["type"] for e in self.seen]

    def heard_rms(self, since_frame: int = 0) -> float:
        if len(self.heard) <= since_frame:
            return 0.0
        samples = np.concatenate(self.heard[since_frame:]).astype(np.float64)
        return float(np.sqrt(np.mean(samples**2)))

    async def close(self) -> None:
        await self._tasks.close()
        await self.pc.close()
