"""`session.update` and `session.close`: which changes a session accepts, and applying them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocol import client_events as ce
from ..protocol.errors import event_error, quote_list
from ..protocol.server_events import event
from ..protocol.session_config import apply_update
from ..protocol.session_models import RealtimeSessionRequest
from . import input_audio

if TYPE_CHECKING:
    from .session import RealtimeSession


async def session_update(s: RealtimeSession, ev: ce.SessionUpdate) -> None:
    request = ev.session
    if request.type != s.kind:
        raise event_error(
            "invalid_value",
            f"Passing a {request.type} session update event to a {s.kind} session is not allowed.",
            param="session.type",
        )
    if isinstance(request, RealtimeSessionRequest):
        check_realtime_update(s, request)
    s.set_config(apply_update(s.config, request))
    s.input.set_format(s.input_format)
    input_audio.configure_voice(s)
    await s.hooks.config_changed(s.config)
    s.emit(event("session.updated", session=s.rendered()))


def check_realtime_update(s: RealtimeSession, request: RealtimeSessionRequest) -> None:
    """Refuse what cannot change mid-session: the model (outside the served set), the voice once
    the assistant has spoken, the speed during a response."""
    current, served = s.view.model, s.options.served_models
    if request.model is not None and request.model != current:
        # every model this gateway serves is the same OVOS assistant: a client may name any of
        # them (the agents SDKs send their own default model with every update)
        if current not in served or request.model not in served:
            raise event_error(
                "invalid_value",
                f"Cannot update a session's model to '{request.model}' (it is '{current}'"
                + (f"; this gateway serves {quote_list(served)}" if served else "")
                + ").",
                param="session.model",
            )
    output = request.audio.output if request.audio is not None else None
    if output is not None and "voice" in output.model_fields_set and s.audio_sent_once:
        voice = s.view.output.voice
        wanted = output.voice if isinstance(output.voice, str) else output.voice.model_dump()
        if wanted != voice:
            raise event_error(
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.",
                param="session.audio.output.voice",
            )
    if s.active is not None and output is not None and "speed" in output.model_fields_set:
        raise event_error(
            "invalid_value",
            "The output speed can only change between responses.",
            param="session.audio.output.speed",
        )


async def session_close(s: RealtimeSession, ev: ce.SessionClose) -> None:
    await s.close()
