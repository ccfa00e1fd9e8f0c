"""A streaming resampler that keeps its filter state across chunks (no clicks at chunk edges).

It works in float32 and rounds to int16 itself: soxr's int16 output is dithered per chunk, so the
same audio cut into different chunks (a client's packet sizes) came out up to ±2 LSB apart and
flipped the VAD on borderline frames. In float32 the output depends only on the audio.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr


def to_int16(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    """Float samples on the int16 scale → int16, rounded and clipped (deterministic). Never in
    place: soxr returns a view of its own buffer, and writing to it corrupts the stream."""
    rounded = np.rint(samples)
    np.minimum(rounded, 32767.0, out=rounded)  # np.clip's Python wrapper cost more than the work
    np.maximum(rounded, -32768.0, out=rounded)
    return rounded.astype(np.int16)


class StreamResampler:
    """Mono int16 in, mono int16 out; `flush()` drains the filter's tail at end of stream."""

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
        )

    def feed(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        if self._stream is None:
            return samples
        return to_int16(self._stream.resample_chunk(samples.astype(np.float32)))

    def flush(self) -> npt.NDArray[np.int16]:
        if self._stream is None:
            return np.zeros(0, dtype=np.int16)
        return to_int16(self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
