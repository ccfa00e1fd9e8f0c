"""Graceful drain: once it begins (SIGTERM) the gateway takes no new work — `/readyz` answers 503,
new realtime WebSocket sessions and WebRTC calls get 503 with `Retry-After`, SIP INVITEs SIP 503 —
while the sessions and calls it holds go on; `idle()` returns when the last of them has ended."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator

from .protocol import errors

RETRY_AFTER_S = 1
"""What a refused client is told to wait: nothing much, another replica takes the session (the
balancer stops sending here once `/readyz` says 503)."""


class Drain:
    """Whether this gateway is draining, and the live work (WebSocket sessions and calls) it waits
    for. `calls` counts the live calls; `watch_calls` is handed a callback to run when one ends."""

    def __init__(self, calls: Callable[[], int], watch_calls: Callable[[Callable[[], None]], None]) -> None:
        self._calls = calls
        self._sessions = 0
        self._changed = asyncio.Event()
        self.since: float | None = None  # monotonic time the drain began
        self.seconds = 0.0  # how long live work may go on
        watch_calls(self._changed.set)

    @property
    def draining(self) -> bool:
        return self.since is not None

    @property
    def live(self) -> int:
        """Realtime WebSocket sessions and calls open now."""
        return self._sessions + self._calls()

    def begin(self, seconds: float) -> None:
        """Refuse new work from now on; live work may go on for `seconds`."""
        if self.since is None:
            self.since, self.seconds = time.monotonic(), seconds

    def remaining_seconds(self) -> float:
        """How long live work may still go on (0 when not draining)."""
        if self.since is None:
            return 0.0
        return max(0.0, self.since + self.seconds - time.monotonic())

    def refuse_new_work(self) -> None:
        """Raise the 503 a new session or call gets while draining."""
        if self.draining:
            raise refusal()

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Count a realtime WebSocket session as live work while the block runs."""
        self._sessions += 1
        try:
            yield
        finally:
            self._sessions -= 1
            self._changed.set()

    async def idle(self) -> None:
        """Return once no session or call is live."""
        while self.live > 0:
            self._changed.clear()
            await self._changed.wait()


def refusal() -> errors.ApiError:
    """503 `server_draining` with `Retry-After`: this replica is stopping; another takes the work."""
    return errors.ApiError(
        503,
        "This server is shutting down and takes no new sessions or calls; retry (another server takes it).",
        type=errors.SERVER_ERROR,
        code="server_draining",
        headers={"retry-after": str(RETRY_AFTER_S)},
    )
