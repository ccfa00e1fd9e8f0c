"""What a save of a conversation must write: the items added or changed since the last save, and
the ids of those deleted — never the rows that stayed as they were.

Positions are spaced `STEP` apart, so an item inserted between two others takes a position in the
gap and moves no other row; only when a gap is used up is the conversation renumbered.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Item = dict[str, Any]
STEP = 1024


@dataclass(frozen=True, slots=True)
class ItemRow:
    item_id: str
    position: int
    item: str  # the item as JSON, without audio


@dataclass(frozen=True, slots=True)
class ItemChanges:
    """Rows to upsert and item ids to delete; `replace_all`: the session's rows are exactly `rows`."""

    rows: tuple[ItemRow, ...] = ()
    removed: tuple[str, ...] = ()
    replace_all: bool = False

    def __bool__(self) -> bool:
        return bool(self.rows or self.removed or self.replace_all)


@dataclass(slots=True)
class _Stored:
    position: int
    item: Item  # a deep copy of the item as it was written


class ItemLedger:
    """What the store holds of one session's conversation (as far as this process wrote it)."""

    def __init__(self) -> None:
        self._stored: dict[str, _Stored] | None = None  # None: unknown, the next save rewrites all

    def changes(self, items: Sequence[Item]) -> ItemChanges:
        """The writes that make the store hold `items` in this order; from now on they count as
        written (call `forget` if writing them fails)."""
        previous = self._stored
        positions = _positions(items, previous) if previous is not None else None
        rewrite = positions is None  # first save, or no room left between two items: renumber
        if positions is None:
            positions = [i * STEP for i in range(len(items))]
        rows: list[ItemRow] = []
        written: dict[str, _Stored] = {}
        for item, position in zip(items, positions, strict=True):
            old = None if rewrite or previous is None else previous.get(item["id"])
            if old is not None and old.position == position and old.item == item:
                written[item["id"]] = old
                continue
            rows.append(ItemRow(item["id"], position, json.dumps(without_audio(item))))
            written[item["id"]] = _Stored(position, copy.deepcopy(item))
        self._stored = written
        if previous is None:
            return ItemChanges(tuple(rows), (), replace_all=True)
        return ItemChanges(tuple(rows), tuple(i for i in previous if i not in written))

    def forget(self) -> None:
        """A write failed: what the store holds is unknown, the next save rewrites it all."""
        self._stored = None


def without_audio(item: Item) -> Item:
    """The item as stored: audio bytes live only in the session, never in the store."""
    if "content" not in item:
        return dict(item)
    return dict(item, content=[{k: v for k, v in p.items() if k != "audio"} for p in item["content"]])


def _positions(items: Sequence[Item], stored: dict[str, _Stored]) -> list[int] | None:
    """Stored items keep their positions while they stay in order; the others are placed in the
    gaps between them. None: a gap is too small, renumber."""
    slots: list[int | None] = []
    last: int | None = None
    for item in items:
        old = stored.get(item["id"])
        if old is not None and (last is None or old.position > last):
            slots.append(old.position)
            last = old.position
        else:
            slots.append(None)
    start = 0
    while start < len(slots):
        if slots[start] is not None:
            start += 1
            continue
        end = start
        while end < len(slots) and slots[end] is None:
            end += 1
        low = slots[start - 1] if start else None
        filled = _fill(low, slots[end] if end < len(slots) else None, end - start)
        if filled is None:
            return None
        slots[start:end] = filled
        start = end
    return [s for s in slots if s is not None]  # every slot is filled by now


def _fill(low: int | None, high: int | None, count: int) -> list[int] | None:
    """`count` increasing positions strictly between `low` and `high` (either may be open)."""
    if high is None:
        base = -STEP if low is None else low
        return [base + (i + 1) * STEP for i in range(count)]
    if low is None:
        return [high - (count - i) * STEP for i in range(count)]
    gap = high - low
    if gap <= count:
        return None
    return [low + (i + 1) * gap // (count + 1) for i in range(count)]
