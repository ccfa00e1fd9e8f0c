"""A call's audio both ways, as PCM: the caller's decoded audio gathered into 100 ms frames for
the engine, and the engine's output audio frames resampled once into the playout.

Neither way touches the session's wire format: the engine takes the caller's PCM as it is
(`RealtimeSession.append_pcm`), and the playout takes the PCM of each `OutputAudio` frame, never
its session-format bytes; the transport encodes what it plays once, to its own codec.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..audio.resample import StreamResampler
from ..engine.frames import OutputAudio, PcmFrame
from .playout import Playout

APPEND_MS = 100  # caller audio reaches the engine in 100 ms pieces, like a typical client's appends


class CallAudio:
    def __init__(self, playout: Playout, append_ms: int = APPEND_MS) -> None:
        self.playout = playout
        self._append_ms = append_ms
        self._pending: list[npt.NDArray[np.int16]] = []
        self._pending_len = 0
        self._rate = 0
        self._resamplers: dict[str, StreamResampler] = {}  # per response: output rate → playout rate

    def caller(self, samples: npt.NDArray[np.int16], rate: int) -> PcmFrame | None:
        """Decoded caller audio at `rate`; a frame for the engine once `append_ms` have gathered."""
        if rate != self._rate:
            self._pending.clear()
            self._pending_len = 0
            self._rate = rate
        self._pending.append(samples)
        self._pending_len += len(samples)
        if self._pending_len * 1000 < self._append_ms * rate:
            return None
        frame = PcmFrame(np.concatenate(self._pending), rate)
        self._pending.clear()
        self._pending_len = 0
        return frame

    def play(self, audio: OutputAudio) -> None:
        """A response's audio into the playout, resampled to its rate (the wire bytes are not read)."""
        resampler = self._resamplers.get(audio.response_id)
        if resampler is None or resampler.in_rate != audio.pcm.rate:
            resampler = self._resamplers[audio.response_id] = StreamResampler(
                audio.pcm.rate, self.playout.rate
            )
        self.playout.push(audio.response_id, resampler.feed(audio.pcm.samples))

    def response_done(self, response_id: str) -> None:
        """The response has no more audio: the resampler's tail is queued too."""
        resampler = self._resamplers.pop(response_id, None)
        if resampler is not None:
            self.playout.push(response_id, resampler.flush())
