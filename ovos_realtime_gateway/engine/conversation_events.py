"""Conversation items: `conversation.item.create/retrieve/truncate/delete`, and the item shapes
the engine emits (raw audio is never inline, except in a retrieval)."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from ..protocol import client_events as ce
from ..protocol import ids
from ..protocol.errors import event_error
from ..protocol.server_events import event
from .conversation import Conversation

if TYPE_CHECKING:
    from .session import RealtimeSession

TRUNCATE_TOLERANCE_MS = 1000


def item_added(s: RealtimeSession, item: dict[str, Any], previous: str | None) -> None:
    public = public_item(item)
    s.emit(event("conversation.item.added", previous_item_id=previous, item=public))
    s.emit(event("conversation.item.done", previous_item_id=previous, item=public))


async def item_create(s: RealtimeSession, ev: ce.ConversationItemCreate) -> None:
    item, audio = server_item(ev.item)
    previous = s.conversation.insert(item, ev.previous_item_id)
    for index, data in audio.items():
        s.conversation.audio.put((item["id"], index), data)
    await s.hooks.items_changed(s.conversation)
    item_added(s, item, previous)


async def item_retrieve(s: RealtimeSession, ev: ce.ConversationItemRetrieve) -> None:
    item = s.conversation.get(ev.item_id)
    full = public_item(item)
    for index, part in enumerate(full.get("content", [])):
        data = s.conversation.audio.get((item["id"], index))
        if data is not None and part.get("type") in ("input_audio", "output_audio"):
            part["audio"] = base64.b64encode(bytes(data)).decode("ascii")
    s.emit(event("conversation.item.retrieved", item=full))


async def item_truncate(s: RealtimeSession, ev: ce.ConversationItemTruncate) -> None:
    item = s.conversation.get(ev.item_id)
    content = item.get("content") or []
    if (
        item.get("role") != "assistant"
        or ev.content_index >= len(content)
        or content[ev.content_index].get("type") != "output_audio"
    ):
        raise event_error("unsupported_content_type", "Only model output audio messages can be truncated.")
    part = (item["id"], ev.content_index)
    fmt = s.view.output.audio_format
    length_ms = fmt.duration_ms(s.conversation.audio.length(part))
    end_ms = ev.audio_end_ms
    if end_ms > length_ms + TRUNCATE_TOLERANCE_MS:
        raise event_error(
            "invalid_value",
            f"Audio content of {length_ms:.0f}ms is already shorter than {end_ms}ms",
            param="audio_end_ms",
        )
    s.conversation.audio.truncate(part, fmt.bytes_for_ms(min(end_ms, length_ms)))
    content[ev.content_index]["transcript"] = ""
    await s.hooks.items_changed(s.conversation)
    s.emit(
        event(
            "conversation.item.truncated",
            item_id=item["id"],
            content_index=ev.content_index,
            audio_end_ms=end_ms,
        )
    )


async def item_delete(s: RealtimeSession, ev: ce.ConversationItemDelete) -> None:
    s.conversation.delete(ev.item_id)
    await s.hooks.items_changed(s.conversation)
    s.emit(event("conversation.item.deleted", item_id=ev.item_id))


def public_item(item: dict[str, Any]) -> dict[str, Any]:
    """A copy of an item as emitted: content parts copied, raw audio never inline."""
    out = dict(item)
    if "content" in out:
        out["content"] = [{k: v for k, v in part.items() if k != "audio"} for part in out["content"]]
    return out


def server_item(item: Any) -> tuple[dict[str, Any], dict[int, bytes]]:
    """A client-created item in the server shape (id minted if absent), and its decoded audio."""
    data = item.model_dump(exclude_none=True)
    data.setdefault("id", ids.item_id())
    data["object"] = "realtime.item"
    data.setdefault("status", "completed")
    audio: dict[int, bytes] = {}
    if data.get("type") == "message":
        for index, part in enumerate(data.get("content", [])):
            if data.get("role") == "assistant" and part.get("type") == "output_audio":
                raise event_error(
                    "invalid_value",
                    "Clients cannot create assistant audio content; use output_text.",
                    param=f"item.content[{index}].type",
                )
            if "audio" in part:
                try:
                    audio[index] = base64.b64decode(part.pop("audio"), validate=True)
                except (binascii.Error, ValueError):
                    raise event_error(
                        "invalid_value",
                        "Invalid 'audio': expected base64.",
                        param=f"item.content[{index}].audio",
                    ) from None
            if part.get("type") == "input_audio":
                part.setdefault("transcript", None)
    return data, audio


def input_item(entry: Any, conversation: Conversation) -> dict[str, Any]:
    """A response's `input` entry: a reference to a conversation item, or an item of its own."""
    if isinstance(entry, ce.ItemReference):
        return conversation.get(entry.id)
    return server_item(entry)[0]
