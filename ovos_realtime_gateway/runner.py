"""GatewayRunner: serve `create_app()` on the current loop (CLI) or on a loop thread (PHAL)."""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import Future

from aiohttp import web

from .app import create_app
from .listener import GuardedSite, PendingConnections
from .services import SERVICES
from .settings import GatewaySettings
from .tasks import TaskSupervisor
from .tls import ensure_self_signed, server_context

log = logging.getLogger("ovos_realtime.runner")


class GatewayRunner:
    """Starts and stops one gateway (application, listener, TLS)."""

    def __init__(self, settings: GatewaySettings, app: web.Application | None = None) -> None:
        self.settings = settings
        self.app = app or create_app(settings)
        self._runner: web.AppRunner | None = None
        self._site: GuardedSite | None = None
        self.port: int = settings.port

    def ssl_context(self) -> ssl.SSLContext | None:
        s = self.settings
        if s.tls_cert is not None and s.tls_key is not None:
            password = self.app[SERVICES].secrets.tls_key_password
            return server_context(
                s.tls_cert.expanduser(), s.tls_key.expanduser(), password.value if password else None
            )
        if s.tls_self_signed:
            return server_context(*ensure_self_signed(s.resolved_data_dir, s.tls_hostnames))
        return None

    @property
    def base_url(self) -> str:
        scheme = "https" if self.settings.tls_enabled else "http"
        host = self.settings.host
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.port}"

    def _guard(self, factory: Callable[[], asyncio.Protocol]) -> PendingConnections:
        metrics = self.app[SERVICES].metrics
        return PendingConnections(
            factory,
            self.settings.header_timeout_seconds,
            self.settings.max_pending_connections,
            metrics.connections_closed,
            metrics.connections_pending,
        )

    async def start(self) -> None:
        # the keep-alive timeout bounds the wait for each later request on a connection
        self._runner = web.AppRunner(
            self.app,
            handle_signals=False,
            access_log=None,
            keepalive_timeout=self.settings.header_timeout_seconds,
        )
        await self._runner.setup()
        self._site = GuardedSite(
            self._runner,
            self.settings.host,
            self.settings.port,
            ssl_context=self.ssl_context(),
            guard=self._guard,
        )
        await self._site.start()
        self.port = self._site.port  # with port 0 the OS picked it
        log.info("gateway listening on %s", self.base_url)

    async def drain(self, stop_now: asyncio.Event) -> int:
        """Take no new sessions or calls, and wait until the live ones have ended, `drain_seconds`
        have passed or `stop_now` is set, whichever is first; return how many are still live
        (`stop()` then ends them, telling each why). With `drain_seconds` 0 it does not wait."""
        services = self.app[SERVICES]
        seconds = self.settings.drain_seconds
        if seconds <= 0 or services.drain.live == 0:
            return services.drain.live
        services.drain.begin(seconds)
        services.metrics.draining.set(1)
        log.info("draining: %d session(s) and call(s) live; up to %g s", services.drain.live, seconds)
        tasks = TaskSupervisor("drain")
        waits = {
            tasks.spawn("idle", services.drain.idle()),
            tasks.spawn("deadline", asyncio.sleep(seconds)),
            tasks.spawn("stop-now", stop_now.wait()),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await tasks.close()
        return services.drain.live

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class ThreadedGateway:
    """A gateway on its own event-loop thread, for hosts that are threads themselves (PHAL)."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="ovos-realtime-gateway", daemon=True)
        self.runner: GatewayRunner | None = None

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self, timeout: float = 30.0) -> None:
        """Start the loop thread and the gateway; raise what start-up raised."""
        self._thread.start()

        async def boot() -> None:
            self.runner = GatewayRunner(self.settings)
            await self.runner.start()

        asyncio.run_coroutine_threadsafe(boot(), self.loop).result(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        if not self._thread.is_alive():
            return
        if self.runner is not None:
            future: Future[None] = asyncio.run_coroutine_threadsafe(self.runner.stop(), self.loop)
            future.result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        self.loop.close()
