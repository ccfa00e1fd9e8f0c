"""A streaming resampler that keeps its filter state across chunks (no clicks at chunk edges)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr


class StreamResampler:
    """Mono int16 in, mono int16 out; `flush()` drains the filter's tail at end of stream."""

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)
        )

    def feed(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        if self._stream is None:
            return samples
        out: npt.NDArray[np.int16] = self._stream.resample_chunk(samples)
        return out

    def flush(self) -> npt.NDArray[np.int16]:
        if self._stream is None:
            return np.zeros(0, dtype=np.int16)
        out: npt.NDArray[np.int16] = self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        return out
