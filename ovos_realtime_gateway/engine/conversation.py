"""The ordered conversation of one session: items in the server shape, plus their raw audio."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..protocol.errors import ApiError, event_error
from .item_audio import ItemAudio

Item = dict[str, Any]


def item_not_found(item_id: str) -> ApiError:
    return event_error("item_not_found", f"Item with item_id not found: {item_id}", param="item_id")


@dataclass
class Conversation:
    """Items in order; `audio` keeps the raw bytes of recent audio parts (never in emitted items)."""

    id: str
    items: list[Item] = field(default_factory=list)
    audio: ItemAudio = field(default_factory=ItemAudio)

    def index_of(self, item_id: str) -> int:
        for index, item in enumerate(self.items):
            if item["id"] == item_id:
                return index
        return -1

    def get(self, item_id: str) -> Item:
        index = self.index_of(item_id)
        if index < 0:
            raise item_not_found(item_id)
        return self.items[index]

    def insert(self, item: Item, previous_item_id: str | None = None) -> str | None:
        """Insert after `previous_item_id` (`"root"`: first; absent: last); return the item before it."""
        if self.index_of(item["id"]) >= 0:
            raise event_error(
                "item_already_exists", f"Item with id '{item['id']}' already exists.", param="item.id"
            )
        if previous_item_id is None:
            position = len(self.items)
        elif previous_item_id == "root":
            position = 0
        else:
            anchor = self.index_of(previous_item_id)
            if anchor < 0:
                raise event_error(
                    "item_not_found",
                    f"Previous item with id '{previous_item_id}' not found.",
                    param="previous_item_id",
                )
            position = anchor + 1
        self.items.insert(position, item)
        return self.items[position - 1]["id"] if position > 0 else None

    def previous_id(self, item_id: str) -> str | None:
        index = self.index_of(item_id)
        return self.items[index - 1]["id"] if index > 0 else None

    def delete(self, item_id: str) -> Item:
        index = self.index_of(item_id)
        if index < 0:
            raise item_not_found(item_id)
        self.audio.delete_item(item_id)
        return self.items.pop(index)

    def last_id(self) -> str | None:
        return self.items[-1]["id"] if self.items else None
