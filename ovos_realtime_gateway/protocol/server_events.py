"""Building server events: every one a JSON object with `type` and a fresh `event_…` id."""

from __future__ import annotations

import base64
from typing import Any

from . import ids
from .errors import ApiError

Event = dict[str, Any]


def event(type_: str, **fields: Any) -> Event:
    """A server event with a new id; `fields` follow in the order given."""
    out: Event = {"type": type_, "event_id": ids.event_id()}
    out.update(fields)
    return out


def error_event(error: ApiError, client_event_id: str | None) -> Event:
    """The `error` event: the client's failed `event_id` is echoed inside `error`."""
    return event(
        "error",
        error={
            "type": error.type,
            "code": error.code,
            "message": error.message,
            "param": error.param,
            "event_id": client_event_id,
        },
    )


def output_audio_delta(
    event_id: str, response_id: str, item_id: str, output_index: int, content_index: int, data: bytes
) -> Event:
    """`response.output_audio.delta`: `data` (in the session's output format) base64-encoded."""
    return {
        "type": "response.output_audio.delta",
        "event_id": event_id,
        "response_id": response_id,
        "item_id": item_id,
        "output_index": output_index,
        "content_index": content_index,
        "delta": base64.b64encode(data).decode("ascii"),
    }
