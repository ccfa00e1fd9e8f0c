"""The baseline for bench/rest_client_secrets.py: a bare aiohttp handler returning fixed bytes.

Usage: python bench/bare_server.py BODY_FILE  (prints `listening on http://…` like the gateway)
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.serving import run  # noqa: E402


def app(body: bytes) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    application = web.Application()
    application.router.add_post("/v1/realtime/client_secrets", handler)
    return application


if __name__ == "__main__":
    run(app(Path(sys.argv[1]).read_bytes()))
