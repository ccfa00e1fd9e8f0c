"""One client frame → the session engine, the same for every transport (WebSocket, data channel).

A malformed frame becomes an `error` event; a bug in a handler costs that event a `server_error`,
never the session.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from ..engine.session import RealtimeSession
from ..observability.metrics import GatewayMetrics
from ..protocol import dialect, errors
from ..protocol.client_events import CLIENT_EVENT_TYPES
from ..protocol.parse import APPEND, BadEvent, decode_frame, parse_client_event, plain_append

log = logging.getLogger("ovos_realtime.transport")
WS_EVENT_TYPES = tuple(t for t in CLIENT_EVENT_TYPES if t != "output_audio_buffer.clear")
BETA_EVENT_TYPES = (*WS_EVENT_TYPES, "transcription_session.update")
CALL_EVENT_TYPES = CLIENT_EVENT_TYPES  # output_audio_buffer.clear means something on a call


async def apply_frame(
    session: RealtimeSession,
    frame: str | bytes,
    accepted: tuple[str, ...],
    metrics: GatewayMetrics,
    beta: bool = False,
) -> None:
    if APPEND in accepted and (audio := plain_append(frame)) is not None:  # most frames: audio
        await _apply(session, metrics, APPEND, None, session.handle_audio(audio))
        return
    data: dict[str, object] = {}
    try:
        data = decode_frame(frame)
        if beta:
            data = dialect.beta_client_event_to_ga(data)
        parsed = parse_client_event(data, accepted)
    except BadEvent as bad:
        metrics.client_event_errors.labels(code=str(bad.error.code)).inc()
        session.fail(bad.error, bad.event_id)
        return
    except errors.ApiError as exc:
        event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
        session.fail(exc, event_id if isinstance(event_id, str) else None)
        return
    await _apply(session, metrics, parsed.type, parsed.event_id, session.handle(parsed))


async def _apply(
    session: RealtimeSession,
    metrics: GatewayMetrics,
    kind: str,
    event_id: str | None,
    handling: Coroutine[Any, Any, errors.ApiError | None],
) -> None:
    """Await the session's handling of one event: a refusal is counted, a bug costs the event."""
    try:
        refused = await handling
        if refused is not None:
            metrics.client_event_errors.labels(code=str(refused.code)).inc()
            if kind == "session.update":  # the client's settings did not apply: say so
                log.info("session %s: session.update refused: %s", session.id, refused.message)
    except Exception:  # a bug must cost one event, not the session
        log.exception("session %s: %s failed", session.id, kind)
        metrics.client_event_errors.labels(code="server_error").inc()
        session.fail(
            errors.ApiError(
                500,
                "The server had an error while processing your event; the session continues.",
                type="server_error",
            ),
            event_id,
        )
