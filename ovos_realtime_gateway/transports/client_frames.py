"""One client frame → the session engine, the same for every transport (WebSocket, data channel).

A malformed frame becomes an `error` event; a bug in a handler costs that event a `server_error`,
never the session.
"""

from __future__ import annotations

import logging

from ..engine.session import RealtimeSession
from ..observability.metrics import GatewayMetrics
from ..protocol import dialect, errors
from ..protocol.client_events import CLIENT_EVENT_TYPES
from ..protocol.parse import BadEvent, decode_frame, parse_client_event

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
    try:
        refused = await session.handle(parsed)
        if refused is not None:
            metrics.client_event_errors.labels(code=str(refused.code)).inc()
            if parsed.type == "session.update":  # the client's settings did not apply: say so
                log.info("session %s: session.update refused: %s", session.id, refused.message)
    except Exception:  # a bug must cost one event, not the session
        log.exception("session %s: %s failed", session.id, parsed.type)
        metrics.client_event_errors.labels(code="server_error").inc()
        session.fail(
            errors.ApiError(
                500,
                "The server had an error while processing your event; the session continues.",
                type="server_error",
            ),
            parsed.event_id,
        )
