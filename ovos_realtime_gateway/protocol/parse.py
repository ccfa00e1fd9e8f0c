"""Parsing one client WebSocket frame into a typed client event, or an OpenAI-shaped error.

Bad frames never end the session: each problem becomes an `error` event that echoes the
client's `event_id` when one could be read.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from . import json_text
from .client_events import CLIENT_EVENT_ADAPTER, CLIENT_EVENT_TYPES, ClientEvent
from .errors import ApiError, event_error, quote_list
from .validation import api_error_from, first_error

APPEND = "input_audio_buffer.append"
_PLAIN_APPEND_HEADS = (f'{{"type": "{APPEND}", "audio": "', f'{{"type":"{APPEND}","audio":"')
"""How the SDKs write an append (Python's `json.dumps` spacing, JavaScript's), without an event_id."""


@dataclass(frozen=True, slots=True)
class BadEvent(Exception):
    """A frame that is not a valid client event; `event_id` is the client's, if it had one."""

    error: ApiError
    event_id: str | None = None


def decode_frame(frame: str | bytes) -> dict[str, Any]:
    """The JSON object of a text frame (raises BadEvent for binary, non-JSON, non-object, no type)."""
    if isinstance(frame, bytes):
        raise BadEvent(
            event_error(
                "invalid_event", "Expected a text WebSocket message; binary frames are not supported."
            )
        )
    try:
        data = json_text.loads(frame)
    except (ValueError, RecursionError) as exc:
        raise BadEvent(
            event_error("invalid_json", f"Invalid event: failed to parse JSON value ({exc}).")
        ) from None
    if not isinstance(data, dict):
        raise BadEvent(event_error("invalid_event", "Invalid event: expected a JSON object."))
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    kind = data.get("type")
    if kind is None:
        raise BadEvent(event_error("invalid_event", "The 'type' field is missing."), event_id)
    if not isinstance(kind, str):
        raise BadEvent(
            event_error("invalid_type", "Invalid type for 'type': expected a string.", param="type"), event_id
        )
    return data


def parse_client_event(data: dict[str, Any], accepted: tuple[str, ...] = CLIENT_EVENT_TYPES) -> ClientEvent:
    """Validate a decoded frame as one of the `accepted` client event types."""
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    kind = data["type"]
    if kind not in accepted:
        raise BadEvent(
            event_error(
                "invalid_value",
                f"Invalid value: '{kind}'. Supported values are: {quote_list(accepted)}.",
                param="type",
            ),
            event_id,
        )
    try:
        return CLIENT_EVENT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise BadEvent(api_error_from(first_error(exc.errors(include_url=False)), data), event_id) from None


def plain_append(frame: str | bytes) -> bytes | None:
    """The decoded audio of a frame that is exactly `{"type": "input_audio_buffer.append", "audio":
    "<base64>"}` (either spacing in `_PLAIN_APPEND_HEADS`); None for any other frame, which the
    full parse takes, errors included. Strict base64 holds no quote, backslash or control
    character, so such a frame is that event and nothing else: 50 a second per session skip the
    JSON decoder and the models."""
    if type(frame) is not str or not frame.endswith('"}'):
        return None
    for head in _PLAIN_APPEND_HEADS:
        if frame.startswith(head):
            try:
                return binascii.a2b_base64(frame[len(head) : -2], strict_mode=True)
            except (binascii.Error, ValueError):
                return None
    return None
