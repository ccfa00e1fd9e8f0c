"""Between a session's audio format and the pipeline's: client audio → 16 kHz PCM for VAD/STT,
TTS audio at its native rate → the session's output format. Both keep state across chunks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from . import g711
from .formats import PIPELINE, AudioFormat
from .resample import StreamResampler


def decode(fmt: AudioFormat, data: bytes) -> npt.NDArray[np.int16]:
    """Bytes in `fmt` (whole samples) → int16 samples."""
    if fmt.encoding == "pcmu":
        return g711.ulaw_decode(data)
    if fmt.encoding == "pcma":
        return g711.alaw_decode(data)
    return np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)


def encode(fmt: AudioFormat, samples: npt.NDArray[np.int16]) -> bytes:
    """int16 samples → bytes in `fmt`."""
    if fmt.encoding == "pcmu":
        return g711.ulaw_encode(samples)
    if fmt.encoding == "pcma":
        return g711.alaw_encode(samples)
    return samples.astype("<i2", copy=False).tobytes()


class InputTranscoder:
    """Session input format → int16 samples at the pipeline rate (16 kHz)."""

    def __init__(
        self, session_format: Mapping[str, Any] | str | None, target_rate: int = PIPELINE.rate
    ) -> None:
        self.format = AudioFormat.from_session(session_format)
        self._resampler = StreamResampler(self.format.rate, target_rate)
        self._carry = b""  # an odd trailing byte of PCM16 waits for its other half

    def feed(self, data: bytes) -> npt.NDArray[np.int16]:
        if self._carry:
            data = self._carry + data
        usable = len(data) - len(data) % self.format.sample_width
        self._carry = data[usable:]
        return self._resampler.feed(decode(self.format, data[:usable]))

    def flush(self) -> npt.NDArray[np.int16]:
        self._carry = b""
        return self._resampler.flush()


class OutputTranscoder:
    """int16 samples at `source_rate` (a TTS plugin's native rate) → bytes in the session format."""

    def __init__(self, source_rate: int, session_format: Mapping[str, Any] | str | None) -> None:
        self.format = AudioFormat.from_session(session_format)
        self._resampler = StreamResampler(source_rate, self.format.rate)

    def feed(self, samples: npt.NDArray[np.int16]) -> bytes:
        return encode(self.format, self._resampler.feed(samples))

    def flush(self) -> bytes:
        return encode(self.format, self._resampler.flush())
