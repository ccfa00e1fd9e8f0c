"""The input audio buffer: appended bytes in the session's input format until commit or clear."""

from __future__ import annotations

from typing import Any

from ..audio import AudioFormat


class InputAudioBuffer:
    def __init__(self, session_format: dict[str, Any]) -> None:
        self.format = AudioFormat.from_session(session_format)
        self._data = bytearray()
        self.total_ms = 0.0  # all audio written this session (speech_started/stopped positions)

    def set_format(self, session_format: dict[str, Any]) -> None:
        fmt = AudioFormat.from_session(session_format)
        if fmt != self.format:
            self.format = fmt
            self._data.clear()

    def append(self, audio: bytes) -> None:
        self._data.extend(audio)
        self.total_ms += self.format.duration_ms(len(audio))

    @property
    def duration_ms(self) -> float:
        return self.format.duration_ms(len(self._data))

    @property
    def start_ms(self) -> float:
        """Session position (ms of all input audio) where the buffered audio begins."""
        return self.total_ms - self.duration_ms

    def drop_before(self, position_ms: float) -> None:
        """Forget buffered audio older than `position_ms` (kept bounded while nobody speaks)."""
        excess = position_ms - self.start_ms
        if excess > 0:
            del self._data[: self.format.bytes_for_ms(excess)]

    def take_until(self, position_ms: float) -> bytes:
        """Remove and return the audio before `position_ms`; later audio stays for the next turn."""
        cut = min(len(self._data), self.format.bytes_for_ms(max(0.0, position_ms - self.start_ms)))
        data = bytes(self._data[:cut])
        del self._data[:cut]
        return data

    def peek(self) -> bytes:
        return bytes(self._data)

    def take(self) -> bytes:
        data = bytes(self._data)
        self._data.clear()
        return data

    def clear(self) -> None:
        self._data.clear()
