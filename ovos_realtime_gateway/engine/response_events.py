"""Responses: `response.create/cancel`, `output_audio_buffer.clear`, starting a response (from a
client or from turn detection) and what follows when one finishes (the queue, the idle timer)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..observability.tracing import Span
from ..protocol import client_events as ce
from ..protocol.errors import event_error
from ..protocol.server_events import event
from . import input_audio
from .audio_out import AudioOut
from .conversation_events import input_item, public_item
from .responder import Turn
from .response import ResponseRun, ResponseSpec
from .usage import input_audio_tokens, text_tokens

if TYPE_CHECKING:
    from .session import RealtimeSession

log = logging.getLogger("ovos_realtime.engine")


async def response_create(s: RealtimeSession, ev: ce.ResponseCreate) -> None:
    if s.kind != "realtime":
        raise event_error("invalid_value", "Transcription sessions do not create responses.", param="type")
    params = ev.response or ce.ResponseParams()
    in_conversation = params.conversation in (None, "auto") and params.input is None
    if in_conversation and s.active is not None:
        if s.options.queue_responses:
            s.queued.append(ev)
            return
        raise event_error(
            "conversation_already_has_active_response",
            f"Conversation already has an active response in progress: {s.active.id}. "
            "Wait until the response is finished before creating a new one.",
        )
    start_response(s, params, in_conversation)


def start_response(
    s: RealtimeSession, params: ce.ResponseParams, in_conversation: bool = True
) -> ResponseRun:
    """Start a response (from `response.create` or from turn detection)."""
    view = s.view
    fmt: dict[str, Any] = dict(view.output.response_format)
    voice: Any = view.output.voice if view.output.voice is not None else "alloy"
    if params.audio is not None and params.audio.output is not None:
        if params.audio.output.format is not None:
            fmt = params.audio.output.format.model_dump()
        if params.audio.output.voice is not None:
            voice = params.audio.output.voice
    voice_name = voice if isinstance(voice, str) else getattr(voice, "id", str(voice))
    modalities: list[str] = [*(params.output_modalities or view.output_modalities or ["audio"])]
    items = (
        s.conversation.items
        if params.input is None
        else [input_item(i, s.conversation) for i in params.input]
    )
    turn = Turn(
        session_id=s.id,
        project_id=s.project_id,
        items=[public_item(i) for i in items],
        instructions=params.instructions if params.instructions is not None else view.instructions,
        output_modalities=list(modalities),
        voice=voice_name,
        language=view.input.language,
        metadata=dict(params.metadata or {}),
        prompt_id=_prompt_id(params.prompt.model_dump() if params.prompt is not None else view.prompt),
    )
    spec = ResponseSpec(
        output_modalities=list(modalities),
        audio_format=fmt,
        voice=voice_name,
        max_output_tokens=params.max_output_tokens or view.max_output_tokens,
        metadata=params.metadata,
        in_conversation=in_conversation,
        input_tokens=_input_tokens(s, items),
    )
    run = ResponseRun(
        spec=spec,
        turn=turn,
        responder=s.responder,
        emit=s.emit,
        conversation=s.conversation,
        conversation_id=s.conversation.id if in_conversation else None,
        audio_out=AudioOut(fmt, s.options.audio_chunk_ms, s.options.audio_lead_ms)
        if modalities == ["audio"]
        else None,
        prepare=lambda: input_audio.await_transcripts(s, turn),
        span=_turn_span(s, in_conversation),
    )
    if in_conversation:
        input_audio.cancel_idle_timer(s)
        s.active = run
    else:
        s.out_of_band.add(run)
    task = run.start(s.tasks)
    task.add_done_callback(lambda _: _response_finished(s, run))
    return run


def _turn_span(s: RealtimeSession, in_conversation: bool) -> Span:
    """A response answers the turn spoken or committed before it, else it is a turn of its own."""
    if in_conversation and s._turn is not None:
        turn, s._turn = s._turn, None
        return turn
    return s._span.child("realtime.turn")


def _input_tokens(s: RealtimeSession, items: list[dict[str, Any]]) -> tuple[int, int]:
    text, audio_ms = 0, 0.0
    fmt = s.input.format
    for item in items:
        for index, part in enumerate(item.get("content") or []):
            text += text_tokens(str(part.get("text") or part.get("transcript") or ""))
            if part.get("type") == "input_audio":
                audio_ms += fmt.duration_ms(s.conversation.audio.length((item["id"], index)))
    return text, input_audio_tokens(audio_ms)


def _response_finished(s: RealtimeSession, run: ResponseRun) -> None:
    if s.active is run:
        s.active = None
        if run.audio_out is not None and run.audio_out.sent_bytes:
            s.audio_sent_once = True
    s.out_of_band.discard(run)
    status, reason = run.outcome
    log.debug("session %s: response %s %s%s", s.id, run.id, status, f" ({reason})" if reason else "")
    s.hooks.response_finished(run)
    if run.spec.in_conversation:
        s.persist_items()
        input_audio.arm_idle_timer(s, run)
    limits = s.hooks.rate_limits()
    if limits:
        s.emit(event("rate_limits.updated", rate_limits=limits))
    if s.queued and s.active is None and not s.closed:
        queued = s.queued.pop(0)
        start_response(s, queued.response or ce.ResponseParams())


async def response_cancel(s: RealtimeSession, ev: ce.ResponseCancel) -> None:
    target: ResponseRun | None = None
    if ev.response_id is None:
        target = s.active
    else:
        target = next(
            (r for r in [s.active, *s.out_of_band] if r is not None and r.id == ev.response_id),
            None,
        )
    if target is None:
        raise event_error("response_cancel_not_active", "Cancellation failed: no active response found")
    await target.cancel("client_cancelled")


async def output_clear(s: RealtimeSession, ev: ce.OutputAudioBufferClear) -> None:
    if s.active is not None:
        await s.active.cancel("client_cancelled")
    s.emit(event("output_audio_buffer.cleared", response_id=s.active.id if s.active else None))


def _prompt_id(prompt: Any) -> str | None:
    return str(prompt["id"]) if isinstance(prompt, Mapping) and prompt.get("id") else None
