"""Run a bench baseline app on a free loopback port, announced like the gateway does."""

from __future__ import annotations

import asyncio

from aiohttp import web


async def serve_forever(app: web.Application) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(f"listening on http://{host}:{port}", flush=True)
    await asyncio.Event().wait()


def run(app: web.Application) -> None:
    try:
        asyncio.run(serve_forever(app))
    except KeyboardInterrupt:
        pass
