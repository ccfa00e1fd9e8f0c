"""The bounded per-connection send queue: the engine never awaits a slow client.

`put` takes the engine's frames, encodes them to the wire at this edge (output audio becomes a
base64 `response.output_audio.delta`; the beta dialect, if any, applies) and enqueues without
waiting; when the queue is full (by events or by bytes)
the client has stopped reading, and the connection is closed (memory stays bounded) —
`overflowed` says so.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from ..engine.frames import Frame, wire_event


class Outbox:
    def __init__(
        self,
        maxsize: int,
        translate: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
        max_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize)
        self._max_bytes = max_bytes
        self.queued_bytes = 0
        self._translate = translate
        self.overflowed = asyncio.Event()
        self.closed = False

    def put(self, frame: Frame) -> None:
        if self.closed:
            return
        event = wire_event(frame)
        if self._translate is not None:
            translated = self._translate(event)
            if translated is None:
                return
            event = translated
        text = json.dumps(event, separators=(",", ":"))
        if self.queued_bytes + len(text) > self._max_bytes and self.queued_bytes > 0:
            self._overflow()
            return
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            self._overflow()
            return
        self.queued_bytes += len(text)

    def _overflow(self) -> None:
        self.closed = True
        self.overflowed.set()

    def close(self) -> None:
        """No more events; the writer drains what is queued, then stops."""
        if not self.closed:
            self.closed = True
            try:
                self._queue.put_nowait(None)
            except asyncio.QueueFull:
                self.overflowed.set()

    async def get(self) -> str | None:
        frame = await self._queue.get()
        if frame is not None:
            self.queued_bytes -= len(frame)
        return frame

    def qsize(self) -> int:
        return self._queue.qsize()
