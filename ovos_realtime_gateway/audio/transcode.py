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

_NO_SAMPLES = np.zeros(0, dtype=np.int16)
_NO_SAMPLES.flags.writeable = False


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
    """Session input format → int16 samples at the pipeline rate (16 kHz).

    `feed(data, min_out)` may hold decoded audio back until resampling it would give `min_out`
    samples: one resampler call per block instead of per append (the call, not the arithmetic,
    is most of its cost for a 20 ms append). The samples are the same whatever the blocks; only
    when they come out moves. `drain()` resamples what is held, `flush()` ends the stream."""

    def __init__(
        self, session_format: Mapping[str, Any] | str | None, target_rate: int = PIPELINE.rate
    ) -> None:
        self.format = AudioFormat.from_session(session_format)
        self._resampler = StreamResampler(self.format.rate, target_rate)
        self._ratio = target_rate / self.format.rate
        self._blocks = self.format.rate != target_rate  # nothing to save when nothing is resampled
        self._carry = b""  # an odd trailing byte of PCM16 waits for its other half
        self._held: list[npt.NDArray[np.int16]] = []  # decoded, not yet resampled
        self._held_samples = 0

    def feed(self, data: bytes, min_out: int = 0) -> npt.NDArray[np.int16]:
        if self._carry:
            data = self._carry + data
        usable = len(data) - len(data) % self.format.sample_width
        self._carry = data[usable:]
        samples = decode(self.format, data[:usable])
        if not self._held and (not self._blocks or samples.size * self._ratio >= min_out):
            return self._resampler.feed(samples)
        self._held.append(samples)
        self._held_samples += samples.size
        if self._held_samples * self._ratio < min_out:
            return _NO_SAMPLES
        return self.drain()

    def drain(self) -> npt.NDArray[np.int16]:
        """The held audio, resampled (the stream goes on)."""
        if not self._held:
            return _NO_SAMPLES
        held = self._held[0] if len(self._held) == 1 else np.concatenate(self._held)
        self._held.clear()
        self._held_samples = 0
        return self._resampler.feed(held)

    def flush(self) -> npt.NDArray[np.int16]:
        self._carry = b""
        held = self.drain()
        tail = self._resampler.flush()
        return np.concatenate([held, tail]) if held.size else tail


class OutputTranscoder:
    """int16 samples at `source_rate` (a TTS plugin's native rate) → bytes in the session format."""

    def __init__(self, source_rate: int, session_format: Mapping[str, Any] | str | None) -> None:
        self.format = AudioFormat.from_session(session_format)
        self._resampler = StreamResampler(source_rate, self.format.rate)

    def feed(self, samples: npt.NDArray[np.int16]) -> bytes:
        return encode(self.format, self._resampler.feed(samples))

    def flush(self) -> bytes:
        return encode(self.format, self._resampler.flush())
