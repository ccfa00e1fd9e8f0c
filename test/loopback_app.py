"""A small aiohttp app on loopback for tests that need a peer the gateway calls (a webhook
receiver, a stand-in OPA server): started on a free port, its base URL handed out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPA_DECISION_PATH = "/v1/data/ovos_realtime/decision"  # what the gateway asks of `opa_url`


async def serve_post(path: str, handler: Handler) -> tuple[web.AppRunner, str]:
    """`handler` answering POST `path` on 127.0.0.1; the runner (clean it up) and the base URL."""
    app = web.Application()
    app.router.add_post(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"
