"""`GET /ovos/microphone`: the device's listener attaches here and hears the session that feeds
the device microphone (`ovos/microphone.py`), as 16 kHz mono PCM16 in binary frames."""

from __future__ import annotations

import contextlib
import logging

from aiohttp import WSMsgType, web

from ..ovos.microphone import admit_microphone
from ..security.gate import Caller
from ..services import SERVICES
from ..tasks import TaskSupervisor

log = logging.getLogger("ovos_realtime.microphone")


async def microphone_listener(request: web.Request) -> web.StreamResponse:
    """`GET /ovos/microphone`: 16 kHz mono PCM16 in binary frames, for the device's listener."""
    services = request.app[SERVICES]
    await admit_microphone(services, Caller.of(request), "microphone.listen")
    ws = web.WebSocketResponse(heartbeat=20.0)
    await ws.prepare(request)
    queue = services.microphone.subscribe()
    log.info("a device listener attached to the realtime microphone")

    async def pump() -> None:
        with contextlib.suppress(ConnectionError):  # the listener went: not an error
            while True:
                await ws.send_bytes(await queue.get())

    tasks = TaskSupervisor("microphone-listener")
    tasks.spawn("sender", pump())
    try:
        async for message in ws:
            if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
    finally:
        await tasks.close()
        services.microphone.unsubscribe(queue)
    return ws
