"""Fan-out of device-microphone audio to the listeners attached at `/ovos/microphone`."""

from __future__ import annotations

import asyncio

LISTENER_QUEUE = 100  # chunks; a listener that stops reading loses audio, the gateway no memory


class MicrophoneHub:
    def __init__(self) -> None:
        self._listeners: set[asyncio.Queue[bytes]] = set()

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def publish(self, pcm16k: bytes) -> None:
        for queue in self._listeners:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(pcm16k)

    def subscribe(self) -> asyncio.Queue[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(LISTENER_QUEUE)
        self._listeners.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes]) -> None:
        self._listeners.discard(queue)
