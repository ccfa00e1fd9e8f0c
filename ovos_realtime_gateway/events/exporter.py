"""A bounded, never-blocking exporter: `publish()` queues (or drops and counts), a background
task drains the queue to a `Sink` in batches, and backs off while the sink is down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from ..observability.metrics import GatewayMetrics
from ..tasks import TaskSupervisor, stop_task
from .event import GatewayEvent

log = logging.getLogger("ovos_realtime.events")


class Sink(Protocol):
    """Where events go (a Redis stream; a Kafka topic would be one more class like it).

    `send` delivers a batch or raises; it may be slow, never the sessions' problem: the exporter
    bounds it with a timeout and drops (and counts) what it could not deliver."""

    name: str

    async def send(self, batch: Sequence[GatewayEvent]) -> None: ...

    async def close(self) -> None: ...


class EventExporter:
    """Queue of at most `queue_size` events between the gateway and a sink.

    While the sink fails (down, or slower than `send_timeout_s`), batches are dropped, counted as
    `sink_down`, and the sink is tried again after a backoff (`backoff_s`, doubling up to
    `max_backoff_s`); nothing is buffered beyond the queue. A full queue drops the new event
    (`queue_full`)."""

    def __init__(
        self,
        sink: Sink,
        metrics: GatewayMetrics,
        queue_size: int,
        *,
        batch_size: int = 256,
        send_timeout_s: float = 2.0,
        backoff_s: float = 0.25,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.sink = sink
        self._metrics = metrics
        self._queue: asyncio.Queue[GatewayEvent] = asyncio.Queue(queue_size)
        self._batch_size = batch_size
        self._send_timeout = send_timeout_s
        self._min_backoff = backoff_s
        self._max_backoff = max_backoff_s
        self._backoff = 0.0
        self._retry_at = 0.0
        self._task: asyncio.Task[None] | None = None

    def publish(self, event: GatewayEvent) -> None:
        """Queue `event` for the sink; never waits (a full queue drops it, counted)."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._dropped("queue_full", 1)

    def start(self) -> None:
        if self._task is None:
            self._task = TaskSupervisor("events").spawn("exporter", self._run())

    async def stop(self, flush_timeout_s: float = 2.0) -> None:
        """What is queued gets `flush_timeout_s` to reach the sink (the rest is dropped, counted),
        then draining stops and the sink closes."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), flush_timeout_s)
        await stop_task(self._task)
        self._task = None
        self._drop_queued()
        try:
            await asyncio.wait_for(self.sink.close(), self._send_timeout)
        except Exception:  # closing a sink that is down may fail or hang; it is gone either way
            log.debug("closing the %s event sink failed", self.sink.name, exc_info=True)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            batch.extend(self._take(self._batch_size - 1))
            try:
                await self._deliver(batch)
            except asyncio.CancelledError:  # stopping mid-send: the batch is not known to be delivered
                self._dropped("sink_down", len(batch))
                raise
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _take(self, most: int) -> list[GatewayEvent]:
        batch: list[GatewayEvent] = []
        while len(batch) < most and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    def _drop_queued(self) -> None:
        left = len(self._take(self._queue.qsize()))
        if left:
            self._dropped("sink_down", left)

    async def _deliver(self, batch: list[GatewayEvent]) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < self._retry_at:
            self._dropped("sink_down", len(batch))
            return
        try:
            await asyncio.wait_for(self.sink.send(batch), self._send_timeout)
        except Exception as exc:  # down, refused, too slow: drop, count, back off
            self._dropped("sink_down", len(batch))
            if not self._backoff:
                log.warning(
                    "event sink %s is unavailable (%s); dropping events until it answers again",
                    self.sink.name,
                    str(exc) or type(exc).__name__,
                )
            self._backoff = min(self._max_backoff, self._backoff * 2 or self._min_backoff)
            self._retry_at = loop.time() + self._backoff
            return
        if self._backoff:
            log.info("event sink %s is reachable again", self.sink.name)
            self._backoff = self._retry_at = 0.0
        for event in batch:
            self._metrics.events_published.labels(kind=event.kind).inc()

    def _dropped(self, reason: str, count: int) -> None:
        self._metrics.events_dropped.labels(reason=reason).inc(count)
