"""The device-microphone bridge: realtime sessions opened with the model `ovos-microphone` feed
their input audio, at 16 kHz, to the device's listener through `/ovos/microphone` (read by the
`ovos-microphone-plugin-realtime` OPM microphone in ovos-dinkum-listener)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import WSMsgType, web

from ..audio import InputTranscoder
from ..engine.conversation import Conversation
from ..engine.session import SessionHooks
from ..protocol.session_config import Config
from ..rest.guard import guard
from ..services import SERVICES
from .microphone_hub import MicrophoneHub

log = logging.getLogger("ovos_realtime.microphone")
MICROPHONE_MODEL = "ovos-microphone"


class MicrophoneFeed(SessionHooks):
    """Session hooks of a microphone session: appended audio goes to the hub, not the buffer."""

    def __init__(self, hub: MicrophoneHub, inner: SessionHooks, session_format: dict[str, Any]) -> None:
        self.hub = hub
        self.inner = inner
        self.transcoder = InputTranscoder(session_format)

    async def config_changed(self, config: Config) -> None:
        await self.inner.config_changed(config)

    async def items_changed(self, conversation: Conversation) -> None:
        await self.inner.items_changed(conversation)

    def rate_limits(self) -> list[dict[str, Any]]:
        return self.inner.rate_limits()

    def input_audio(self, audio: bytes) -> bool:
        pcm = self.transcoder.feed(audio)
        if pcm.size:
            self.hub.publish(pcm.astype("<i2").tobytes())
        return True


async def microphone_listener(request: web.Request) -> web.StreamResponse:
    """`GET /ovos/microphone`: 16 kHz mono PCM16 in binary frames, for the device's listener."""
    services = request.app[SERVICES]
    await guard(request, "microphone.listen", transport="websocket")
    ws = web.WebSocketResponse(heartbeat=20.0)
    await ws.prepare(request)
    queue = services.microphone.subscribe()
    log.info("a device listener attached to the realtime microphone")

    async def pump() -> None:
        while True:
            await ws.send_bytes(await queue.get())

    sender = asyncio.get_running_loop().create_task(pump())
    try:
        async for message in ws:
            if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        services.microphone.unsubscribe(queue)
    return ws
