"""What the caller hears, frame by frame: queued response audio, then silence.

The transport (an RTP track or packet clock) pulls one frame per tick, so the playout knows which
response is audible; it reports `started`/`stopped` per response for `output_audio_buffer.*`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

PlayoutListener = Callable[[str, str], None]  # (event: "started" | "stopped", response_id)


class Playout:
    def __init__(self, rate: int, frame_samples: int, listener: PlayoutListener) -> None:
        self.rate = rate
        self.frame_samples = frame_samples
        self._listener = listener
        self._queue: deque[tuple[str, npt.NDArray[np.int16]]] = deque()
        self._head_offset = 0
        self.playing: str | None = None
        self._complete: set[str] = set()
        self._frame = np.zeros(frame_samples, dtype=np.int16)

    def push(self, response_id: str, samples: npt.NDArray[np.int16]) -> None:
        if len(samples):
            self._queue.append((response_id, samples))

    def finish(self, response_id: str) -> None:
        """The response has no more audio: `stopped` once what is queued has played."""
        self._complete.add(response_id)

    def clear(self) -> str | None:
        """Drop everything not yet played; the id of the response that was cut, if any."""
        cut = self.playing or (self._queue[0][0] if self._queue else None)
        self._queue.clear()
        self._head_offset = 0
        self.playing = None
        return cut

    def next_frame(self) -> npt.NDArray[np.int16]:
        """The next frame to play (a view reused on the next call: send or copy it at once)."""
        filled = 0
        frame = self._frame
        while filled < self.frame_samples and self._queue:
            response_id, samples = self._queue[0]
            if self.playing != response_id:
                self._switch_to(response_id)
            take = min(self.frame_samples - filled, len(samples) - self._head_offset)
            frame[filled : filled + take] = samples[self._head_offset : self._head_offset + take]
            filled += take
            self._head_offset += take
            if self._head_offset == len(samples):
                self._queue.popleft()
                self._head_offset = 0
        frame[filled:] = 0
        if not self._queue and self.playing is not None and self.playing in self._complete:
            self._stop_playing()
        return frame

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
