"""Audio between a call's RTP tracks and the session engine.

`PlayoutTrack` is the assistant's voice on the call: 20 ms frames at 48 kHz, paced by the wall
clock, silence when there is nothing to say. It knows which response is playing, so the call can
say `output_audio_buffer.started/stopped/cleared` with their WebRTC meaning (what the caller hears).
`read_track` turns the caller's decoded frames into int16 mono samples.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections import deque
from collections.abc import Awaitable, Callable

import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

PLAYOUT_RATE = 48_000
FRAME_SAMPLES = PLAYOUT_RATE // 50  # 20 ms, Opus's usual packet
TIME_BASE = fractions.Fraction(1, PLAYOUT_RATE)

PlayoutListener = Callable[[str, str], None]  # (event: "started" | "stopped", response_id)


class PlayoutTrack(MediaStreamTrack):
    """The outbound audio track: queued response audio, then silence."""

    kind = "audio"

    def __init__(self, listener: PlayoutListener) -> None:
        super().__init__()
        self._listener = listener
        self._queue: deque[tuple[str, npt.NDArray[np.int16]]] = deque()
        self._head_offset = 0
        self.queued_samples = 0
        self.playing: str | None = None
        self._complete: set[str] = set()
        self._start: float | None = None
        self._pts = 0
        self._frame = np.zeros(FRAME_SAMPLES, dtype=np.int16)

    def push(self, response_id: str, samples: npt.NDArray[np.int16]) -> None:
        if len(samples):
            self._queue.append((response_id, samples))
            self.queued_samples += len(samples)

    def finish(self, response_id: str) -> None:
        """The response has no more audio: `stopped` once what is queued has played."""
        self._complete.add(response_id)

    def clear(self) -> str | None:
        """Drop everything not yet played; the id of the response that was cut, if any."""
        cut = self.playing or (self._queue[0][0] if self._queue else None)
        self._queue.clear()
        self._head_offset = 0
        self.queued_samples = 0
        self.playing = None
        return cut

    @property
    def queued_ms(self) -> float:
        return self.queued_samples * 1000.0 / PLAYOUT_RATE

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += FRAME_SAMPLES
            wait = self._start + self._pts / PLAYOUT_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        self._fill()
        frame = AudioFrame.from_ndarray(self._frame.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = PLAYOUT_RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        return frame

    def _fill(self) -> None:
        filled = 0
        while filled < FRAME_SAMPLES and self._queue:
            response_id, samples = self._queue[0]
            if self.playing != response_id:
                self._switch_to(response_id)
            take = min(FRAME_SAMPLES - filled, len(samples) - self._head_offset)
            self._frame[filled : filled + take] = samples[self._head_offset : self._head_offset + take]
            filled += take
            self._head_offset += take
            self.queued_samples -= take
            if self._head_offset == len(samples):
                self._queue.popleft()
                self._head_offset = 0
        self._frame[filled:] = 0
        if not self._queue and self.playing is not None and self.playing in self._complete:
            self._stop_playing()

    def _switch_to(self, response_id: str) -> None:
        if self.playing is not None:
            self._stop_playing()
        self.playing = response_id
        self._listener("started", response_id)

    def _stop_playing(self) -> None:
        assert self.playing is not None
        stopped, self.playing = self.playing, None
        self._complete.discard(stopped)
        self._listener("stopped", stopped)


def mono_samples(frame: AudioFrame) -> npt.NDArray[np.int16]:
    """A decoded frame (s16, packed or planar, any channel count) → int16 mono."""
    data = np.asarray(frame.to_ndarray(), dtype=np.int16)
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        interleaved = data.T.reshape(-1, channels) if channels > 1 else data.reshape(-1, 1)
    else:
        interleaved = data.reshape(-1, channels)
    if channels == 1:
        mono: npt.NDArray[np.int16] = np.ascontiguousarray(interleaved[:, 0])
        return mono
    mixed: npt.NDArray[np.int16] = interleaved.mean(axis=1, dtype=np.float32).astype(np.int16)
    return mixed


async def read_track(
    track: MediaStreamTrack, sink: Callable[[npt.NDArray[np.int16], int], Awaitable[None]]
) -> None:
    """Feed the caller's audio to `sink(samples, sample_rate)` until the track ends."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if isinstance(frame, AudioFrame):
            await sink(mono_samples(frame), frame.sample_rate)
