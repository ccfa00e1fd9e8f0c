"""The assistant's audio on its way out: resampled to the session's output rate, cut into evenly
sized PCM frames, and paced so the client is never more than `lead_ms` ahead of real time.

The frames stay PCM: `encode` gives a frame's bytes in the session's output format (what the
item keeps and the WebSocket edge base64-encodes), while a call plays the PCM as it is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from ..audio import AudioFormat
from ..audio.resample import StreamResampler
from ..audio.transcode import encode
from .frames import PcmFrame


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
        # whole samples per frame: the bytes of a frame are `format.bytes_for_ms(chunk_ms)`
        self._chunk = max(self.format.bytes_for_ms(chunk_ms) // self.format.sample_width, 1)
        self._pending: list[npt.NDArray[np.int16]] = []
        self._pending_len = 0
        self._resampler: StreamResampler | None = None
        self._lead_s = lead_ms / 1000.0
        self._clock = clock
        self._started: float | None = None
        self.sent_bytes = 0

    def feed(self, pcm: bytes, sample_rate: int) -> list[PcmFrame]:
        """TTS audio (16-bit PCM at `sample_rate`) → the full frames now ready."""
        if self._resampler is None or self._resampler.in_rate != sample_rate:
            if self._resampler is not None:
                self._push(self._resampler.flush())
            self._resampler = StreamResampler(sample_rate, self.format.rate)
        usable = len(pcm) - (len(pcm) % 2)
        self._push(self._resampler.feed(np.frombuffer(pcm[:usable], dtype="<i2")))
        return self._frames(whole_only=True)

    def flush(self) -> list[PcmFrame]:
        """The rest, the last frame shorter."""
        if self._resampler is not None:
            self._push(self._resampler.flush())
        return self._frames(whole_only=False)

    def encode(self, frame: PcmFrame) -> bytes:
        """A frame's bytes in the session's output format."""
        return encode(self.format, frame.samples)

    def _push(self, samples: npt.NDArray[np.int16]) -> None:
        if len(samples):
            self._pending.append(samples)
            self._pending_len += len(samples)

    def _frames(self, whole_only: bool) -> list[PcmFrame]:
        size = self._chunk
        count = self._pending_len // size if whole_only else -(-self._pending_len // size)
        if count == 0:
            return []
        joined = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        frames = [PcmFrame(joined[i * size : (i + 1) * size], self.format.rate) for i in range(count)]
        rest = joined[count * size :]
        self._pending = [rest] if len(rest) else []
        self._pending_len = len(rest)
        return frames

    def sent(self, data: bytes) -> None:
        if self._started is None:
            self._started = self._clock()
        self.sent_bytes += len(data)

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
