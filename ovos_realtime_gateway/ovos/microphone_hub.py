"""The device microphone: one session feeds it at a time; its audio fans out to the device's
listeners attached at `/ovos/microphone`."""

from __future__ import annotations

import asyncio

LISTENER_QUEUE = 100  # chunks; a listener that stops reading loses audio, the gateway no memory
MICROPHONE_RESOURCE = "device-microphone"  # the resource id the policy sees for feed and listen


class MicrophoneHub:
    def __init__(self) -> None:
        self._listeners: set[asyncio.Queue[bytes]] = set()
        self.feeder: str | None = None  # the session that holds the microphone

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def claim(self, session_id: str) -> bool:
        """Take the microphone for `session_id`; False while another session holds it (two voices
        mixed into one stream would reach the device's wake word and STT as neither)."""
        if self.feeder is None:
            self.feeder = session_id
        return self.feeder == session_id

    def release(self, session_id: str) -> None:
        if self.feeder == session_id:
            self.feeder = None

    def publish(self, session_id: str, pcm16k: bytes) -> None:
        if session_id != self.feeder:
            return
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
