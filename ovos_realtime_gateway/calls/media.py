"""Audio between a WebRTC call's tracks and the call.

`PlayoutTrack` is the assistant's voice on the call: 20 ms frames at 48 kHz from the call's
`Playout`, paced by the wall clock. `read_track` turns the caller's decoded frames into int16 mono.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from .playout import Playout

PLAYOUT_RATE = 48_000
FRAME_SAMPLES = PLAYOUT_RATE // 50  # 20 ms, Opus's usual packet
TIME_BASE = fractions.Fraction(1, PLAYOUT_RATE)


class PlayoutTrack(MediaStreamTrack):
    """The outbound audio track: one frame of the playout per 20 ms."""

    kind = "audio"

    def __init__(self, playout: Playout) -> None:
        super().__init__()
        self.playout = playout
        self._start: float | None = None
        self._pts = 0

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
        samples = self.playout.next_frame()
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = PLAYOUT_RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        return frame


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


async def read_track(track: MediaStreamTrack, sink: Callable[[npt.NDArray[np.int16], int], None]) -> None:
    """Feed the caller's audio to `sink(samples, sample_rate)` until the track ends."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if isinstance(frame, AudioFrame):
            sink(mono_samples(frame), frame.sample_rate)
