"""Validate emitted server events against the installed `openai` SDK's own models (ground truth)."""

from __future__ import annotations

import typing
from typing import Any

from openai.types.realtime import RealtimeServerEvent
from pydantic import BaseModel

_union = typing.get_args(RealtimeServerEvent)[0]
SDK_EVENT_MODELS: dict[str, type[BaseModel]] = {}
for _member in typing.get_args(_union):
    _type = typing.get_args(_member.model_fields["type"].annotation)
    if _type:
        SDK_EVENT_MODELS[_type[0]] = _member


def check_server_event(event: dict[str, Any]) -> BaseModel:
    """The event parsed strictly by the SDK model for its type (extra fields are not allowed to
    hide type errors: every field the SDK knows must validate)."""
    assert isinstance(event.get("type"), str), event
    assert isinstance(event.get("event_id"), str) and event["event_id"].startswith("event_"), event
    model = SDK_EVENT_MODELS.get(event["type"])
    assert model is not None, f"the SDK knows no server event {event['type']!r}"
    return model.model_validate(event)
