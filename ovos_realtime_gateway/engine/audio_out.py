"""The assistant's audio on its way out: transcode to the session format, cut into evenly sized
deltas, and pace them so the client is never more than `lead_ms` ahead of real time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..audio import AudioFormat, DeltaChunker, OutputTranscoder


class AudioOut:
    """Per-response output audio path (a new one per response: no state leaks between turns)."""

    def __init__(
        self,
        session_format: dict[str, Any],
        chunk_ms: int = 100,
        lead_ms: float = 1000.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.format = AudioFormat.from_session(session_format)
        self._session_format = session_format
        self._chunker = DeltaChunker(self.format, chunk_ms)
        self._transcoder: OutputTranscoder | None = None
        self._source_rate: int | None = None
        self._lead_s = lead_ms / 1000.0
        self._clock = clock
        self._started: float | None = None
        self.sent_bytes = 0

    def feed(self, pcm: bytes, sample_rate: int) -> list[bytes]:
        if self._transcoder is None or self._source_rate != sample_rate:
            tail = self._transcoder.flush() if self._transcoder is not None else b""
            self._transcoder = OutputTranscoder(sample_rate, self._session_format)
            self._source_rate = sample_rate
            if tail:
                self._chunker.push(tail)
        usable = len(pcm) - (len(pcm) % 2)
        samples = np.frombuffer(pcm[:usable], dtype="<i2")
        return self._chunker.push(self._transcoder.feed(samples))

    def flush(self) -> list[bytes]:
        out: list[bytes] = []
        if self._transcoder is not None:
            out += self._chunker.push(self._transcoder.flush())
        last = self._chunker.flush()
        if last:
            out.append(last)
        return out

    def sent(self, delta: bytes) -> None:
        if self._started is None:
            self._started = self._clock()
        self.sent_bytes += len(delta)

    @property
    def sent_ms(self) -> float:
        return self.format.duration_ms(self.sent_bytes)

    def remaining_playout_s(self) -> float:
        """How long a client playing in real time still needs for the audio already sent."""
        if self._started is None:
            return 0.0
        return max(0.0, self.sent_ms / 1000.0 - (self._clock() - self._started))

    async def pace(self) -> None:
        """Sleep while the audio sent is more than `lead_ms` ahead of the wall clock."""
        if self._started is None:
            return
        ahead = self.sent_ms / 1000.0 - (self._clock() - self._started) - self._lead_s
        if ahead > 0:
            await asyncio.sleep(ahead)
