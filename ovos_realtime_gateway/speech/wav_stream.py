"""WAV bytes as they arrive (an OPM `StreamingTTS` yields a WAV file in pieces) → 16-bit mono PCM.

Streaming writers cannot know the data size up front (espeak-ng writes 0x7ffff000), so the
declared size is ignored: everything after the `data` header is audio until the stream ends.
"""

from __future__ import annotations

import struct

import numpy as np


class WavStreamError(ValueError):
    pass


class WavStream:
    def __init__(self) -> None:
        self._head = bytearray()
        self._carry = b""  # an incomplete sample frame left from the previous chunk
        self.rate = 0
        self.channels = 0
        self._in_data = False

    def feed(self, chunk: bytes) -> bytes:
        """The whole PCM16 mono samples this chunk completes (may be empty)."""
        if not self._in_data:
            self._head.extend(chunk)
            chunk = self._parse_header()
            if not self._in_data:
                return b""
        data = self._carry + chunk
        frame = 2 * self.channels
        whole = len(data) - len(data) % frame
        self._carry = data[whole:]
        samples = np.frombuffer(data[:whole], dtype="<i2")
        if self.channels > 1:
            samples = samples.reshape(-1, self.channels).mean(axis=1).astype("<i2")
        return samples.tobytes()

    def _parse_header(self) -> bytes:
        """Consume the header once it is all here; the audio after it is returned."""
        head = self._head
        if len(head) >= 12 and (head[:4] != b"RIFF" or head[8:12] != b"WAVE"):
            raise WavStreamError("the TTS stream is not a WAV file")
        offset = 12
        while len(head) >= offset + 8:
            kind, size = head[offset : offset + 4], struct.unpack_from("<I", head, offset + 4)[0]
            body = offset + 8
            if kind == b"data":
                if not self.rate:
                    raise WavStreamError("the TTS stream has no fmt chunk before its data")
                self._in_data = True
                rest = bytes(head[body:])
                self._head = bytearray()
                return rest
            if len(head) < body + size:
                return b""
            if kind == b"fmt ":
                audio_format, channels, rate = struct.unpack_from("<HHI", head, body)
                bits = struct.unpack_from("<H", head, body + 14)[0]
                if audio_format not in (1, 0xFFFE) or bits != 16:
                    raise WavStreamError(
                        f"the TTS stream is not 16-bit PCM ({bits} bits, format {audio_format})"
                    )
                self.rate, self.channels = rate, channels
            offset = body + size + size % 2
        return b""
