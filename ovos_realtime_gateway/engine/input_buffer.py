"""The input audio buffer: appended audio until commit or clear, kept twice and aligned in time.

The bytes in the session's input format are what items hold (retrieval, truncation, usage); the
same audio at 16 kHz is what VAD and STT take. The session's one transcoder makes the 16 kHz
copy once, as audio arrives: server VAD, a live transcript and the committed turn's
transcription all read it, instead of each resampling the bytes again. A call's caller audio
arrives as PCM (`append_pcm`): its 16 kHz copy is resampled from that PCM, and it is encoded once
to the session's format for the item, never decoded back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ..audio import PIPELINE, AudioFormat, InputTranscoder
from ..audio.resample import StreamResampler
from ..audio.transcode import encode

PCM_BYTES_PER_MS = PIPELINE.rate * 2 // 1000


class InputAudioBuffer:
    def __init__(self, session_format: dict[str, Any]) -> None:
        self.format = AudioFormat.from_session(session_format)
        self._bytes_per_ms = self.format.bytes_per_ms
        self._session_format = session_format
        self._transcoder = InputTranscoder(session_format)
        self._pcm_in: _PcmInput | None = None  # a call's PCM → the session's rate and 16 kHz
        self._data = bytearray()
        self._pcm = bytearray()  # the same audio, 16 kHz 16-bit mono
        self.total_ms = 0.0  # all audio written this session (speech_started/stopped positions)
        self._pcm_end_ms = 0.0  # where the 16 kHz copy ends (the transcoder holds a few ms back)

    def set_format(self, session_format: dict[str, Any]) -> None:
        fmt = AudioFormat.from_session(session_format)
        if fmt != self.format:
            self.format = fmt
            self._bytes_per_ms = fmt.bytes_per_ms
            self._restart(session_format)
            self._data.clear()
            self._pcm.clear()

    def _restart(self, session_format: dict[str, Any]) -> None:
        self._session_format = session_format
        self._transcoder = InputTranscoder(session_format)
        self._pcm_in = None
        self._pcm_end_ms = self.total_ms

    def append(self, audio: bytes, min_out: int = 0) -> npt.NDArray[np.int16]:
        """Add audio in the session's format; the new 16 kHz samples it made. With `min_out`, the
        resampler may hold the audio back until it makes that many (the bytes count at once)."""
        if self._pcm_in is not None:  # PCM appends came first: their resamplers' tails first
            self._add(*self._pcm_in.flush())
            self._pcm_in = None
        return self._add(audio, self._transcoder.feed(audio, min_out))

    def append_pcm(self, samples: npt.NDArray[np.int16], rate: int) -> npt.NDArray[np.int16]:
        """Add PCM at `rate`; the new 16 kHz samples (resampled from the PCM, not from the bytes)."""
        if self._pcm_in is None or self._pcm_in.rate != rate:
            self.release_held()
            if self._pcm_in is not None:
                self._add(*self._pcm_in.flush())
            self._pcm_in = _PcmInput(rate, self.format.rate)
        return self._add(*self._pcm_in.feed(samples))

    def release_held(self) -> None:
        """Resample the appended audio the transcoder holds back into the 16 kHz copy (before PCM
        appends, or before a new VAD starts at `total_ms`)."""
        self._add(b"", self._transcoder.drain())

    def _add(
        self, audio: bytes | npt.NDArray[np.int16], samples: npt.NDArray[np.int16]
    ) -> npt.NDArray[np.int16]:
        if not isinstance(audio, bytes):
            audio = encode(self.format, audio)
        if audio:
            self._data.extend(audio)
            self.total_ms += len(audio) / self._bytes_per_ms
        if samples.size:
            self._pcm.extend(samples.astype("<i2", copy=False).tobytes())
            self._pcm_end_ms += samples.size * 1000 / PIPELINE.rate
        return samples

    @property
    def duration_ms(self) -> float:
        return len(self._data) / self._bytes_per_ms

    @property
    def start_ms(self) -> float:
        """Session position (ms of all input audio) where the buffered audio begins."""
        return self.total_ms - self.duration_ms

    @property
    def _pcm_start_ms(self) -> float:
        return self._pcm_end_ms - len(self._pcm) / PCM_BYTES_PER_MS

    def _pcm_bytes_until(self, position_ms: float) -> int:
        whole_samples = round(max(0.0, position_ms - self._pcm_start_ms) * PIPELINE.rate / 1000)
        return min(len(self._pcm), whole_samples * 2)

    def drop_before(self, position_ms: float) -> None:
        """Forget buffered audio older than `position_ms` (kept bounded while nobody speaks)."""
        excess = position_ms - self.start_ms
        if excess > 0:
            del self._data[: self.format.bytes_for_ms(excess)]
        del self._pcm[: self._pcm_bytes_until(position_ms)]

    def take_until(self, position_ms: float) -> tuple[bytes, bytes]:
        """Remove and return the audio before `position_ms` (session format, 16 kHz); later audio
        stays for the next turn."""
        cut = min(len(self._data), self.format.bytes_for_ms(max(0.0, position_ms - self.start_ms)))
        data = bytes(self._data[:cut])
        del self._data[:cut]
        pcm_cut = self._pcm_bytes_until(position_ms)
        pcm = bytes(self._pcm[:pcm_cut])
        del self._pcm[:pcm_cut]
        return data, pcm

    def peek_pcm(self) -> bytes:
        """The buffered audio at 16 kHz, so far."""
        return bytes(self._pcm)

    def take(self) -> tuple[bytes, bytes]:
        """Remove and return all of it (a manual commit): the transcoder's last few ms included,
        so it starts afresh for the audio that follows."""
        if self._pcm_in is not None:
            session_tail, tail = self._pcm_in.flush()
            rest = encode(self.format, session_tail)
            self._data.extend(rest)
            self.total_ms += self.format.duration_ms(len(rest))
        else:
            tail = self._transcoder.flush()
        data, pcm = bytes(self._data), bytes(self._pcm) + tail.astype("<i2", copy=False).tobytes()
        self._data.clear()
        self._pcm.clear()
        self._restart(self._session_format)
        return data, pcm

    def clear(self) -> None:
        self._data.clear()
        self._pcm.clear()


class _PcmInput:
    """PCM at `rate` → (the same at the session's rate, for the item; at 16 kHz, for VAD and STT).

    When the session's rate lies between the two (a WebRTC call's 48 kHz into a 24 kHz session),
    the 16 kHz copy is resampled from the session-rate PCM: 48→24→16 costs less than 48→24 plus
    48→16. Otherwise (a SIP call's 8 kHz) both come straight from the caller's PCM.
    """

    def __init__(self, rate: int, session_rate: int) -> None:
        self.rate = rate
        self._chained = rate > session_rate >= PIPELINE.rate
        self._to_session = StreamResampler(rate, session_rate)
        self._to_pipeline = StreamResampler(session_rate if self._chained else rate, PIPELINE.rate)

    def feed(self, samples: npt.NDArray[np.int16]) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
        session = self._to_session.feed(samples)
        return session, self._to_pipeline.feed(session if self._chained else samples)

    def flush(self) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
        session = self._to_session.flush()
        if not self._chained:
            return session, self._to_pipeline.flush()
        return session, np.concatenate([self._to_pipeline.feed(session), self._to_pipeline.flush()])
