"""Cut a stream of audio bytes into evenly sized deltas (whole samples, `chunk_ms` each)."""

from __future__ import annotations

from .formats import AudioFormat


class DeltaChunker:
    def __init__(self, fmt: AudioFormat, chunk_ms: int) -> None:
        self.chunk_bytes = max(fmt.bytes_for_ms(chunk_ms), fmt.sample_width)
        self._pending = bytearray()

    def push(self, data: bytes) -> list[bytes]:
        """Add bytes; return every full chunk now available."""
        self._pending.extend(data)
        size = self.chunk_bytes
        whole = len(self._pending) - len(self._pending) % size
        chunks = [bytes(self._pending[i : i + size]) for i in range(0, whole, size)]
        del self._pending[:whole]
        return chunks

    def flush(self) -> bytes | None:
        """The last, shorter chunk (None when nothing is pending)."""
        if not self._pending:
            return None
        last = bytes(self._pending)
        self._pending.clear()
        return last
