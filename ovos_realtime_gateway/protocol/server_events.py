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


def error_event(error: ApiError, client_event_id: str | None, event_id: str | None = None) -> Event:
    """The `error` event: the client's failed `event_id` is echoed inside `error`."""
    return {
        "type": "error",
        "event_id": event_id or ids.event_id(),
        "error": {
            "type": error.type,
            "code": error.code,
            "message": error.message,
            "param": error.param,
            "event_id": client_event_id,
        },
    }


def part_delta(
    type_: str,
    event_id: str,
    response_id: str,
    item_id: str,
    output_index: int,
    content_index: int,
    delta: str,
) -> Event:
    """A delta of a response's content part (`response.output_text.delta`, `…_transcript.delta`)."""
    return {
        "type": type_,
        "event_id": event_id,
        "response_id": response_id,
        "item_id": item_id,
        "output_index": output_index,
        "content_index": content_index,
        "delta": delta,
    }


def speech_started(event_id: str, audio_start_ms: int, item_id: str) -> Event:
    return {
        "type": "input_audio_buffer.speech_started",
        "event_id": event_id,
        "audio_start_ms": audio_start_ms,
        "item_id": item_id,
    }


def speech_stopped(event_id: str, audio_end_ms: int, item_id: str) -> Event:
    return {
        "type": "input_audio_buffer.speech_stopped",
        "event_id": event_id,
        "audio_end_ms": audio_end_ms,
        "item_id": item_id,
    }


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
