"""The audit trail: decisions and actions, written to the store in batches off the event loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..security.client_address import AddressRedactor
from ..store import AuditEntry, Store
from ..tasks import TaskSupervisor, stop_task
from .metrics import GatewayMetrics

log = logging.getLogger("ovos_realtime.audit")
MAX_BACKLOG = 20_000
"""Entries kept in memory while the store cannot take them (~0.7 KiB each: ~14 MB); past it they
are counted, not kept, and one `audit.dropped` row says how many once the store answers. Without
a bound, requests from many addresses during a store outage grow the gateway without end."""


@dataclass(slots=True)
class _Repeats:
    """The refusals one client repeated within one window: one row when the window closes."""

    first: AuditEntry
    last_ts: float
    actions: Counter[str] = field(default_factory=Counter)

    def entry(self) -> AuditEntry:
        attempts = sum(self.actions.values())
        detail = {**self.first.detail, "attempts": attempts, "last_ts": self.last_ts}
        return replace(self.first, detail={**detail, "actions": dict(self.actions)})


class AuditWriter:
    """Collects audit entries and flushes them in one transaction every `interval_s`.

    A refusal a client repeats (throttled, rate limited) is counted, not written each time: one
    row per client per `window_s`, carrying the number of `attempts`.

    Entries carry ids, decisions and statuses, never content (speech, text, keys); a client
    address (`detail.remote`) is kept only as `address` allows, in the store and in the log.
    While the store cannot take them, at most `max_backlog` entries wait (`MAX_BACKLOG`).
    """

    def __init__(
        self,
        store: Store,
        metrics: GatewayMetrics,
        interval_s: float = 0.2,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        address: AddressRedactor | None = None,
        max_backlog: int = MAX_BACKLOG,
    ) -> None:
        self._store = store
        self._address = address or AddressRedactor("truncate")
        self._metrics = metrics
        self._interval = interval_s
        self._window = window_s
        self._clock = clock
        self._pending: list[AuditEntry] = []
        self._repeats: dict[str, _Repeats] = {}
        self._task: asyncio.Task[None] | None = None
        self._max_backlog = max_backlog
        self._writing = 0  # entries of the batch being written (in memory until it is stored)
        self._dropped = 0  # entries not kept because the backlog was full
        self._failing = False  # the last write failed (its warning is logged once per outage)

    def record(self, entry: AuditEntry) -> None:
        """Queue an entry; never blocks. Logged at once, persisted at the next flush."""
        entry = self._private(entry)
        _log(entry)
        self._queue(entry)

    def record_repeated(self, key: str, entry: AuditEntry) -> None:
        """Count a refusal that `key` (a client address, a key and scope) keeps causing; the first
        of a window is logged at once, the window is logged and queued as one entry when it closes.
        `key` stays in memory: it is neither logged nor stored."""
        repeats = self._repeats.get(key)
        if repeats is None:
            entry = self._private(entry)
            repeats = self._repeats[key] = _Repeats(entry, entry.ts)
            _log(entry, f" (repeats are counted into one row for {self._window:g} s)")
        repeats.last_ts = entry.ts
        repeats.actions[entry.action] += 1

    def _private(self, entry: AuditEntry) -> AuditEntry:
        """The entry with its client address as much as the setting keeps (or without it)."""
        if "remote" not in entry.detail:
            return entry
        detail = dict(entry.detail)
        kept = self._address(detail.pop("remote"))
        if kept is not None:
            detail["remote"] = kept
        return replace(entry, detail=detail)

    def _queue(self, entry: AuditEntry) -> None:
        if len(self._pending) + self._writing >= self._max_backlog:
            if self._dropped == 0:
                log.error(
                    "the audit backlog is full (%d entries the store has not taken): further entries "
                    "are counted, not kept, until it answers",
                    self._max_backlog,
                )
            self._dropped += 1
            return
        self._pending.append(entry)
        self._metrics.audit_backlog.set(len(self._pending) + self._writing)

    def _dropped_entry(self, dropped: int) -> AuditEntry:
        return AuditEntry(
            self._clock(),
            None,
            "audit.dropped",
            "dropped",
            503,
            principal="gateway",
            detail={"entries": dropped},
        )

    def _close_windows(self, everything: bool) -> None:
        now = self._clock()
        for key, repeats in list(self._repeats.items()):
            if everything or now - repeats.first.ts >= self._window:
                del self._repeats[key]
                entry = repeats.entry()
                _log(entry, f" attempts={entry.detail['attempts']}")
                self._queue(entry)

    async def flush(self, everything: bool = False) -> None:
        """Write what is queued, and the windows of repeats that closed (`everything`: all)."""
        self._close_windows(everything)
        batch, self._pending = self._pending, []
        dropped = self._dropped
        if not batch and not dropped:
            return
        self._writing = len(batch)
        try:
            await self._store.write_audit(batch + ([self._dropped_entry(dropped)] if dropped else []))
        except Exception as exc:
            if not self._failing:
                log.warning(
                    "could not write %d audit entries (%s: %s); keeping them (at most %d) for the next flush",
                    len(batch),
                    type(exc).__name__,
                    exc,
                    self._max_backlog,
                )
            self._failing = True
            self._pending[:0] = batch
        else:
            self._dropped -= dropped
            if self._failing:
                log.info("the store takes audit entries again: wrote %d", len(batch))
            self._failing = False
        finally:
            self._writing = 0
            self._metrics.audit_backlog.set(len(self._pending))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    def start(self) -> None:
        if self._task is None:
            self._task = TaskSupervisor("audit").spawn("writer", self._run())

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        await self.flush(everything=True)


def _log(entry: AuditEntry, note: str = "") -> None:
    remote = entry.detail.get("remote")
    log.info(
        "audit %s %s status=%s project=%s principal=%s resource=%s%s%s",
        entry.action,
        entry.decision,
        entry.status,
        entry.project_id,
        entry.principal,
        entry.resource,
        f" remote={remote}" if remote is not None else "",
        note,
        extra={"request_id": entry.request_id},
    )
