"""The gateway's listening socket, guarded against connections that hold a slot without sending
a request (slowloris, idle sockets).

A new connection must complete its first request's headers within `header_timeout_seconds` —
after a TLS handshake, which gets as long — and at most `max_pending_connections` connections may
be waiting to: past that, the one waiting longest is closed (a real client sends its headers at
once, so the oldest waiting connection is the likeliest attacker). Between requests, aiohttp's
keep-alive timer, set to the same time by the runner, closes a connection whose next request has
not arrived. A request being answered, and a WebSocket after its handshake, are never timed out.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import Counter, Gauge

log = logging.getLogger("ovos_realtime.listener")
HEADERS_END = (b"\n\r\n", b"\n\n")  # the empty line after the headers (CRLF, or bare LF)
WARN_EVERY_S = 60.0


class PendingConnections:
    """A protocol factory around aiohttp's that enforces the first request's deadline and cap."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        timeout: float,
        limit: int,
        closed: Counter,
        pending: Gauge,
    ) -> None:
        self.factory = factory
        self.timeout = timeout
        self.limit = limit
        self._closed = closed
        self._pending_gauge = pending
        self._waiting: dict[_Guarded, None] = {}  # oldest first
        self._warned_at = -WARN_EVERY_S

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self, self.factory())

    def admit(self, connection: _Guarded) -> None:
        self._waiting[connection] = None
        if len(self._waiting) > self.limit:
            oldest = next(iter(self._waiting))
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY_S:
                self._warned_at = now
                log.warning(
                    "more than %d connections are waiting to send a request (max_pending_connections): "
                    "closing the oldest ones",
                    self.limit,
                )
            oldest.shed("too_many_pending")
        self._pending_gauge.set(len(self._waiting))

    def release(self, connection: _Guarded) -> None:
        self._waiting.pop(connection, None)
        self._pending_gauge.set(len(self._waiting))

    def count(self, reason: str) -> None:
        self._closed.labels(reason=reason).inc()


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, closed unless its first headers come in time."""

    def __init__(self, guard: PendingConnections, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (TCP or TLS)
        # before aiohttp's own timers, so that this deadline is the one that fires
        self._timer = asyncio.get_running_loop().call_later(self.guard.timeout, self.shed, "header_timeout")
        self.guard.admit(self)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if any(end in seen for end in HEADERS_END):
                self._settle()
            else:
                self._tail = seen[-2:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._settle()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def shed(self, reason: str) -> None:
        """Close a connection still waiting for its first request's headers."""
        if self._timer is None:
            return
        self._settle()
        self.guard.count(reason)
        log.debug("closed a connection waiting for its first request (%s)", reason)
        if self.transport is not None:
            self.transport.abort()  # at once: a TLS close would wait for the peer's close_notify

    def _settle(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.guard.release(self)


class GuardedSite(web.BaseSite):
    """A TCP site (as aiohttp's TCPSite) that serves through `PendingConnections` and bounds the
    TLS handshake by the same timeout."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        guard: Callable[[Callable[[], asyncio.Protocol]], PendingConnections],
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self._guard = guard

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        sockets = getattr(self._server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else self._port

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        guard = self._guard(server)
        self._server = await asyncio.get_running_loop().create_server(
            guard,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=guard.timeout if self._ssl_context else None,
        )
