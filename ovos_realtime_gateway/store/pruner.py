"""The retention task: deletes what the store no longer keeps, while the gateway serves."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..tasks import TaskSupervisor
from .interface import Store
from .retention import RetentionRules

log = logging.getLogger("ovos_realtime.store")


class Pruner:
    """Every `interval_s` (the first time at start), deletes old rows in batches of `batch_rows`,
    one short transaction each: work queued on the store thread waits for one batch at most."""

    def __init__(
        self,
        store: Store,
        rules: RetentionRules,
        interval_s: float,
        batch_rows: int,
        on_deleted: Callable[[str, int], None] = lambda table, count: None,
    ) -> None:
        self._store = store
        self._rules = rules
        self._interval = interval_s
        self._batch = batch_rows
        self._on_deleted = on_deleted
        self._tasks: TaskSupervisor | None = None

    async def prune(self, now: float | None = None) -> dict[str, int]:
        """One pass over every kind of row; how many of each were deleted."""
        now = time.time() if now is None else now
        deleted: dict[str, int] = {}
        for table, cutoff in self._rules.cutoffs(now).items():
            total = 0
            while True:
                count = await self._store.delete_batch(table, cutoff, now, self._batch)
                total += count
                if count:
                    self._on_deleted(table, count)
                if count < self._batch:
                    break
                await asyncio.sleep(0)  # let what the loop has ready reach the store between batches
            if total:
                deleted[table] = total
        if deleted:
            log.info("retention deleted %s", ", ".join(f"{n} {table}" for table, n in deleted.items()))
        if deleted.keys() & {"conversation_items", "sessions"}:
            await self._store.checkpoint()  # what was said leaves the WAL too, not only the tables
        return deleted

    async def _run(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:  # a failed pass is retried at the next one; serving goes on
                log.exception("retention pass failed")
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        if self._tasks is None and self._rules.cutoffs(0.0):
            self._tasks = TaskSupervisor("store")
            self._tasks.spawn("retention", self._run())

    async def stop(self) -> None:
        if self._tasks is not None:
            await self._tasks.close()
            self._tasks = None
