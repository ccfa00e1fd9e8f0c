"""`OrphanSweeper`: the records of replicas that died are closed by the ones alive. At start a
gateway closes the `active` sessions and open calls no live replica holds (alone: every one, its
previous run died); in a cluster every replica also does so every `lease_seconds`, so a replica
killed with SIGKILL has its records closed (`end_reason` `replica_lost`) once its lease expired.
A replica never closes what a live one holds; when Redis cannot say who is alive, nothing is
closed until it can."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..store import Store, StoreUnavailable
from ..store.records import ClosedRecord
from ..tasks import TaskSupervisor
from .registry import Registry, RegistryUnavailable

log = logging.getLogger("ovos_realtime.cluster")

REPLICA_LOST = "replica_lost"  # a record closed by another replica after its holder's lease expired
GATEWAY_DIED = "gateway_died"  # a record closed by the next start of a gateway alone


class OrphanSweeper:
    """Closes what dead replicas held: `at_start()` once, then (`clustered`) every `interval_s`;
    `closed` is told of each record closed (the event bridge)."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        interval_s: float,
        clustered: bool,
        closed: Callable[[ClosedRecord], None] = lambda record: None,
    ) -> None:
        self._store = store
        self._registry = registry
        self._interval = interval_s
        self._clustered = clustered
        self._closed = closed
        self._tasks: TaskSupervisor | None = None

    async def at_start(self) -> list[ClosedRecord]:
        """Close what no live replica holds, rows from before replicas were recorded included."""
        return await self._sweep(unheld=True, reason=REPLICA_LOST if self._clustered else GATEWAY_DIED)

    async def sweep(self) -> list[ClosedRecord]:
        """Close the records of replicas whose lease expired (nothing while Redis cannot tell)."""
        return await self._sweep(unheld=False, reason=REPLICA_LOST)

    async def _sweep(self, unheld: bool, reason: str) -> list[ClosedRecord]:
        try:
            live = await self._registry.live_replicas()
        except RegistryUnavailable as exc:
            log.warning("cluster: cannot tell which replicas are alive (%s); closing no records", exc)
            return []
        closed = await self._store.close_orphans(int(time.time()), live.keys(), reason, unheld)
        for record in closed:
            holder = f"replica {record.replica_id}" if record.replica_id else "a gateway"
            log.warning("%s %s held by %s that is gone: closed (%s)", record.kind, record.id, holder, reason)
            self._closed(record)
        return closed

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sweep()
            except StoreUnavailable as exc:  # the next round tries again
                log.warning("cluster: closing dead replicas' records failed: %s", exc)
            except Exception:
                log.exception("cluster: closing dead replicas' records failed")

    def start(self) -> None:
        """Sweep every `interval_s` (only in a cluster: a gateway alone has no peer to outlive)."""
        if self._clustered and self._tasks is None:
            self._tasks = TaskSupervisor("cluster-failover")
            self._tasks.spawn("orphan-sweep", self._run())

    async def stop(self) -> None:
        if self._tasks is not None:
            await self._tasks.close()
            self._tasks = None
