"""`PendingWrites`: what live sessions could not write while the store was unreachable (PostgreSQL
down, sqlite locked), kept (the latest write per record) and retried until the store answers, so
an outage neither ends a session nor loses what it said."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ..tasks import TaskSupervisor
from .interface import StoreUnavailable

log = logging.getLogger("ovos_realtime.store")
Write = Callable[[], Awaitable[None]]


class PendingWrites:
    """Writes kept by key (`session:<id>`, `items:<id>`, `call:<id>`), retried in the order they
    were last kept every `retry_s` seconds; a newer write of a key replaces the older (each writes
    the latest)."""

    def __init__(self, retry_s: float = 1.0) -> None:
        self._writes: dict[str, Write] = {}
        self._retry_s = retry_s
        self._tasks: TaskSupervisor | None = None

    def __len__(self) -> int:
        return len(self._writes)

    async def write(self, key: str, write: Write) -> None:
        """Run `write`; while the store is unreachable keep it instead (the caller goes on, and
        its writes are stored in order once the store answers). Behind what is kept already, it
        is kept without trying: in order, and no wait on a store known to be away."""
        if self._writes:
            self.keep(key, write)
            return
        try:
            await write()
        except StoreUnavailable:
            self.keep(key, write)

    def keep(self, key: str, write: Write) -> None:
        """Keep `write` to retry (behind everything kept before it)."""
        if not self._writes:
            log.warning(
                "the store is unreachable: keeping the sessions' and calls' writes, retried every %gs",
                self._retry_s,
            )
        self._writes.pop(key, None)
        self._writes[key] = write

    async def flush(self) -> bool:
        """Write what is kept, in order; False when the store is still unreachable (the rest stays)."""
        written = 0
        for key, write in list(self._writes.items()):
            try:
                await write()
            except StoreUnavailable:
                return False
            except Exception:  # not the store being away: retrying will not help
                log.exception("a kept write (%s) failed; dropped", key)
            else:
                written += 1
            if self._writes.get(key) is write:  # not kept again meanwhile
                del self._writes[key]
        if written:
            log.info("the store answers again: wrote %d kept write(s)", written)
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._retry_s)
            if self._writes:
                await self.flush()

    def start(self) -> None:
        if self._tasks is None:
            self._tasks = TaskSupervisor("store")
            self._tasks.spawn("pending-writes", self._run())

    async def stop(self) -> None:
        """Stop retrying; one last try, and what is still kept is logged as lost."""
        if self._tasks is not None:
            await self._tasks.close()
            self._tasks = None
        if self._writes and not await self.flush():
            log.error("the store stayed unreachable: %d kept write(s) were not stored", len(self._writes))
