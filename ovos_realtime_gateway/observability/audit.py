"""The audit trail: decisions and actions, written to the store in batches off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..store import AuditEntry, Store
from .metrics import GatewayMetrics

log = logging.getLogger("ovos_realtime.audit")


class AuditWriter:
    """Collects audit entries and flushes them in one transaction every `interval_s`."""

    def __init__(self, store: Store, metrics: GatewayMetrics, interval_s: float = 0.2) -> None:
        self._store = store
        self._metrics = metrics
        self._interval = interval_s
        self._pending: list[AuditEntry] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def record(self, entry: AuditEntry) -> None:
        """Queue an entry; never blocks. Logged at once, persisted at the next flush."""
        log.info(
            "audit %s %s status=%s project=%s principal=%s resource=%s",
            entry.action,
            entry.decision,
            entry.status,
            entry.project_id,
            entry.principal,
            entry.resource,
            extra={"request_id": entry.request_id},
        )
        self._pending.append(entry)
        self._metrics.audit_backlog.set(len(self._pending))

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        self._metrics.audit_backlog.set(0)
        if not batch:
            return
        try:
            await self._store.write_audit(batch)
        except Exception:
            log.exception("could not write %d audit entries; keeping them for the next flush", len(batch))
            self._pending[:0] = batch
            self._metrics.audit_backlog.set(len(self._pending))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
