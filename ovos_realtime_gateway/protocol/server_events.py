"""Building server events: every one a JSON object with `type` and a fresh `event_…` id."""

from __future__ import annotations

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
