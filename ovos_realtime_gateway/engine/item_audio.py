"""The raw audio of a conversation's items, bounded per session.

A voice conversation appends ~2.9 MB a minute (PCM16 at 24 kHz, both directions): kept whole, a
long session holds all of it. Only recent audio is ever needed again — truncating the answer
being played (barge-in), retrieving the latest turn — so the newest parts are kept within
`budget_bytes` and older parts lose their bytes. Every part's length stays known: usage counts
the conversation's input audio, and truncation checks `audio_end_ms` against it.
"""

from __future__ import annotations

from collections import OrderedDict

PartKey = tuple[str, int]  # (item id, content index)
DEFAULT_BUDGET_BYTES = 4 * 1024 * 1024  # ~87 s of PCM16 at 24 kHz


class ItemAudio:
    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self._kept: OrderedDict[PartKey, bytearray] = OrderedDict()  # oldest first
        self._lengths: dict[PartKey, int] = {}
        self.kept_bytes = 0

    def put(self, key: PartKey, data: bytes) -> None:
        """A whole part (a committed turn, an item the client created)."""
        self._forget(key)
        self._kept[key] = bytearray(data)
        self._lengths[key] = len(data)
        self.kept_bytes += len(data)
        self._evict(keep=key)

    def extend(self, key: PartKey, data: bytes) -> None:
        """More of a part as it streams (an answer's audio)."""
        part = self._kept.get(key)
        if part is None:
            part = self._kept[key] = bytearray()
            self._lengths.setdefault(key, 0)
        self._kept.move_to_end(key)
        part.extend(data)
        self._lengths[key] += len(data)
        self.kept_bytes += len(data)
        self._evict(keep=key)

    def get(self, key: PartKey) -> bytes | None:
        """The part's bytes, or None when it has none or they were dropped for newer audio."""
        part = self._kept.get(key)
        return bytes(part) if part is not None else None

    def length(self, key: PartKey) -> int:
        """How many bytes the part has (kept or not)."""
        return self._lengths.get(key, 0)

    def truncate(self, key: PartKey, size: int) -> None:
        """Shorten the part to `size` bytes (a truncated answer)."""
        if size >= self.length(key):
            return
        part = self._kept.get(key)
        if part is not None:
            self.kept_bytes -= len(part) - size
            del part[size:]
        self._lengths[key] = size

    def delete_item(self, item_id: str) -> None:
        for key in [k for k in self._lengths if k[0] == item_id]:
            self._forget(key)

    def _forget(self, key: PartKey) -> None:
        part = self._kept.pop(key, None)
        if part is not None:
            self.kept_bytes -= len(part)
        self._lengths.pop(key, None)

    def _evict(self, keep: PartKey) -> None:
        """Drop the oldest parts' bytes until within budget; the newest part always stays whole."""
        while self.kept_bytes > self.budget_bytes and len(self._kept) > 1:
            oldest = next(iter(self._kept))
            if oldest == keep:
                self._kept.move_to_end(oldest)
                continue
            self.kept_bytes -= len(self._kept.pop(oldest))
