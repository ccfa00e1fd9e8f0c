"""`OrphanSweeper`: the records of replicas that died are closed by the ones alive.

A gateway alone closes at start every `active` session and open call (its previous run died:
`gateway_died`). In a cluster every replica looks every `lease_seconds` at who is alive and closes
the records of a replica whose lease was missing at two looks in a row (`replica_lost`), so a
replica killed with SIGKILL has its records closed within about three leases. Two looks, not one:
a Redis restarted empty has no leases until each replica's next heartbeat (a third of a lease
later), and a live replica's records must never be closed. While Redis cannot say who is alive,
nothing is closed. A replica that was only paused past its lease (or cut off from Redis) and
registers again marks what it still holds live again (`reopen_lost`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..store import Store, StoreUnavailable
from ..store.records import ClosedRecord
from ..tasks import TaskSupervisor
from .registry import Kind, Registry, RegistryUnavailable

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
        self._seen: set[str] | None = None  # the replicas alive at the previous look (None: unknown)
        if clustered:
            registry.registered_again = self._registered_again

    async def at_start(self) -> list[ClosedRecord]:
        """Alone: close every open record (rows from before replicas were recorded included). In a
        cluster: the first look at who is alive (the next sweep closes what is still missing)."""
        if self._clustered:
            return await self.sweep()
        live = await self._registry.live_replicas()
        return await self._close(set(live), unheld=True, reason=GATEWAY_DIED)

    async def sweep(self) -> list[ClosedRecord]:
        """Close the records of replicas missing at this look and the previous one."""
        try:
            live = set(await self._registry.live_replicas())
        except RegistryUnavailable as exc:
            self._seen = None
            log.warning("cluster: cannot tell which replicas are alive (%s); closing no records", exc)
            return []
        seen, self._seen = self._seen, live
        if seen is None:
            return []
        return await self._close(live | seen, unheld=False, reason=REPLICA_LOST)

    async def _close(self, live: set[str], unheld: bool, reason: str) -> list[ClosedRecord]:
        closed = await self._store.close_orphans(int(time.time()), live, reason, unheld)
        for record in closed:
            holder = f"replica {record.replica_id}" if record.replica_id else "a gateway"
            log.warning("%s %s held by %s that is gone: closed (%s)", record.kind, record.id, holder, reason)
            self._closed(record)
        return closed

    def _registered_again(self, held: list[tuple[Kind, str]]) -> None:
        """This replica's lease was gone (a pause longer than it, Redis cut off or restarted): a
        peer may have closed what it holds as lost meanwhile; those records are live again."""
        if self._tasks is not None and held:
            self._tasks.spawn("reopen", self._reopen(held))

    async def _reopen(self, held: list[tuple[Kind, str]]) -> None:
        """At once, and once more a sweep later: a peer that looked before the lease came back may
        close them just after the first (its close and this reopen racing)."""
        await self._reopen_now(held)
        await asyncio.sleep(self._interval)
        await self._reopen_now(held)

    async def _reopen_now(self, held: list[tuple[Kind, str]]) -> None:
        sessions = [thing_id for kind, thing_id in held if kind == "session"]
        calls = [thing_id for kind, thing_id in held if kind == "call"]
        replica = self._registry.replica.id
        try:
            opened = await self._store.reopen_lost(int(time.time()), replica, sessions, calls)
        except Exception as exc:  # the store is away: they stay closed, and say so
            log.warning("cluster: could not mark this replica's live records live again: %s", exc)
            return
        if opened:
            log.warning(
                "cluster: %d live record(s) of this replica closed as lost by a peer: live again", opened
            )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sweep()
            except StoreUnavailable as exc:  # the next round tries again
                self._seen = None
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
