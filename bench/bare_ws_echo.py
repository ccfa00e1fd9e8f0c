"""The baseline for bench/realtime_append.py: a bare aiohttp WebSocket that echoes every frame.

Usage: python bench/bare_ws_echo.py   (prints `listening on http://…` like the gateway)
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import WSMsgType, web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.serving import run  # noqa: E402


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=32 * 1024 * 1024)
    await ws.prepare(request)
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            await ws.send_str(message.data)
    return ws


def app() -> web.Application:
    application = web.Application()
    application.router.add_get("/v1/realtime", echo)
    return application


if __name__ == "__main__":
    run(app())
