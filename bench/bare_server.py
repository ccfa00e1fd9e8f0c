"""The baseline for bench/rest_client_secrets.py: a bare aiohttp handler returning fixed bytes.

Usage: python bench/bare_server.py BODY_FILE  (prints `listening on http://…` like the gateway)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web


async def serve(body: bytes) -> None:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/realtime/client_secrets", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(f"listening on http://{host}:{port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(serve(Path(sys.argv[1]).read_bytes()))
    except KeyboardInterrupt:
        pass
