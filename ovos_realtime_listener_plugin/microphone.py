"""An OPM microphone (`opm.microphone`, `ovos-microphone-plugin-realtime`) fed by realtime sessions.

The device's own listener (ovos-dinkum-listener) reads it like any microphone: 16 kHz 16-bit mono
chunks. The audio comes from the gateway's `/ovos/microphone` WebSocket, which carries what
realtime sessions opened with the model `ovos-microphone` append — so a phone or a browser
becomes the device's far-field microphone, and wake word, continuous mode, VAD and STT of the
device apply unchanged. With no session speaking, it reads silence in real time.

mycroft.conf:
    "listener": {"microphone": {"module": "ovos-microphone-plugin-realtime",
        "ovos-microphone-plugin-realtime": {"url": "ws://127.0.0.1:8080/ovos/microphone",
                                            "api_key": "sk-ovos-…"}}}
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ovos_plugin_manager.templates.microphone import Microphone

log = logging.getLogger("ovos_realtime.microphone")
MAX_BUFFERED_S = 2.0  # a listener that falls behind drops the oldest audio, never grows memory
JITTER_S = 0.3  # how long a chunk waits for late network audio before the stream counts as idle


@dataclass
class RealtimeMicrophone(Microphone):  # type: ignore[misc]  # OVOS's base class is untyped
    url: str = "ws://127.0.0.1:8080/ovos/microphone"
    api_key: str = ""
    _buffer: bytearray = field(default_factory=bytearray, repr=False)
    _lock: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _running: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _socket: Any = field(default=None, repr=False)
    _next_chunk_at: float = field(default=0.0, repr=False)

    def start(self) -> None:
        self._running.set()
        self._next_chunk_at = time.monotonic()
        self._thread = threading.Thread(target=self._receive, name="realtime-microphone", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running.clear()
        if self._socket is not None:
            try:
                self._socket.close()
            except Exception:  # already closed
                log.debug("closing the microphone socket failed", exc_info=True)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def read_chunk(self) -> bytes | None:
        """The next chunk, paced in real time. While a session streams, whole chunks of its audio
        (waiting up to JITTER_S for network jitter, never inserting gaps into speech); when no
        session speaks, silence."""
        if not self._running.is_set():
            return None
        self._next_chunk_at += self.seconds_per_chunk
        now = time.monotonic()
        if now - self._next_chunk_at > MAX_BUFFERED_S:  # the reader stalled: do not catch up for ever
            self._next_chunk_at = now
        with self._lock:
            self._lock.wait_for(
                lambda: len(self._buffer) >= self.chunk_size or not self._running.is_set(),
                timeout=max(0.0, self._next_chunk_at + JITTER_S - time.monotonic()),
            )
            chunk = bytes(self._buffer[: self.chunk_size])
            del self._buffer[: self.chunk_size]
        if not chunk:  # nobody is speaking into it: silence, at the pace of a real microphone
            time.sleep(max(0.0, self._next_chunk_at - time.monotonic()))  # noqa: TID251 - plugin thread
        return chunk + bytes(self.chunk_size - len(chunk))

    def _receive(self) -> None:
        import websocket  # websocket-client, which ovos-bus-client already needs

        limit = int(MAX_BUFFERED_S * self.sample_rate * self.sample_width)
        while self._running.is_set():
            try:
                self._socket = websocket.create_connection(
                    self.url, header=[f"Authorization: Bearer {self.api_key}"], timeout=5
                )
                self._socket.settimeout(1)
                log.info("realtime microphone connected to %s", self.url)
                while self._running.is_set():
                    try:
                        opcode, data = self._socket.recv_data()
                    except websocket.WebSocketTimeoutException:
                        continue
                    if opcode == websocket.ABNF.OPCODE_CLOSE:
                        break
                    if opcode == websocket.ABNF.OPCODE_BINARY:
                        with self._lock:
                            self._buffer.extend(data)
                            if len(self._buffer) > limit:
                                del self._buffer[: len(self._buffer) - limit]
                            self._lock.notify_all()
            except Exception as exc:  # the gateway is not up yet, or went away: retry
                log.info("realtime microphone: %s; retrying", exc)
            finally:
                if self._socket is not None:
                    try:
                        self._socket.close()
                    except Exception:
                        log.debug("closing the microphone socket failed", exc_info=True)
            if self._running.is_set():
                time.sleep(1)  # noqa: TID251 - the plugin's own thread, no event loop here
