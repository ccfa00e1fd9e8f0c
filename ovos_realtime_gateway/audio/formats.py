"""Audio formats as the Realtime API names them, with the byte arithmetic the engine needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Encoding = Literal["pcm16", "pcmu", "pcma"]

# GA format types and the beta dialect's string names, mapped to (encoding, fixed rate or None).
_SESSION_TYPES: dict[str, tuple[Encoding, int | None]] = {
    "audio/pcm": ("pcm16", None),
    "audio/pcmu": ("pcmu", 8000),
    "audio/pcma": ("pcma", 8000),
    "pcm16": ("pcm16", 24000),
    "g711_ulaw": ("pcmu", 8000),
    "g711_alaw": ("pcma", 8000),
}


@dataclass(frozen=True)
class AudioFormat:
    """A mono audio format: 16-bit little-endian PCM or 8-bit G.711."""

    encoding: Encoding
    rate: int

    @property
    def sample_width(self) -> int:
        return 2 if self.encoding == "pcm16" else 1

    @property
    def bytes_per_ms(self) -> float:
        return self.rate * self.sample_width / 1000.0

    def duration_ms(self, nbytes: int) -> float:
        return nbytes / self.bytes_per_ms

    def bytes_for_ms(self, ms: float) -> int:
        """Bytes holding `ms` milliseconds, rounded down to a whole sample."""
        return int(ms * self.rate / 1000.0) * self.sample_width

    @classmethod
    def from_session(cls, session_format: Mapping[str, Any] | str | None) -> AudioFormat:
        """The format of a session's `audio.input.format` / `audio.output.format` (GA dict or beta name)."""
        if session_format is None:
            return PCM16_24K
        if isinstance(session_format, str):
            kind, rate = session_format, None
        else:
            kind, rate = str(session_format.get("type", "audio/pcm")), session_format.get("rate")
        if kind not in _SESSION_TYPES:
            raise ValueError(f"unsupported audio format {kind!r}")
        encoding, fixed_rate = _SESSION_TYPES[kind]
        return cls(encoding, fixed_rate or int(rate or 24000))


PCM16_24K = AudioFormat("pcm16", 24000)
PCMU = AudioFormat("pcmu", 8000)
PCMA = AudioFormat("pcma", 8000)
PIPELINE = AudioFormat("pcm16", 16000)
"""What VAD and STT plugins consume: 16 kHz mono 16-bit PCM."""
