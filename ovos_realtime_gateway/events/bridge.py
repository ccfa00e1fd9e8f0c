"""`EventBridge`: the one interface the gateway's code calls (`services.events`) to report what
happened. Off (each call returns at once, nothing is kept) unless `event_bridge.redis_url` is set."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from ..observability.metrics import GatewayMetrics
from .event import EventKind, GatewayEvent
from .exporter import EventExporter, Sink

if TYPE_CHECKING:
    from ..engine.response import ResponseRun
    from ..settings import EventBridgeSettings

# WebSocket close codes a session ends with → why it ended (see transports/websocket.py)
CLOSE_REASONS = {
    1000: "closed",
    1001: "expired",
    1006: "connection_lost",
    1008: "slow_consumer",
    1011: "server_error",
    3000: "key_revoked",
}


class _Call(Protocol):
    id: str
    project_id: str
    transport: str
    end_reason: str | None
    session: Any  # the call's RealtimeSession, once it has one


class EventBridge:
    """Builds the gateway's events and hands them to the exporter; never waits, never raises."""

    def __init__(self, exporter: EventExporter | None = None, include_text: bool = False) -> None:
        self.exporter = exporter
        self.include_text = include_text
        self._open: dict[str, tuple[float, str | None, dict[str, str]]] = {}  # id → (start, project, detail)

    @classmethod
    def from_settings(
        cls, settings: EventBridgeSettings, metrics: GatewayMetrics, sink: Sink | None = None
    ) -> EventBridge:
        """The bridge `settings` describe (off without `redis_url`; `sink` replaces Redis)."""
        if sink is None and settings.redis_url is not None:
            from .redis_sink import RedisStreamSink

            sink = RedisStreamSink(settings.redis_url, settings.stream, settings.max_stream_length)
        if sink is None:
            return cls()
        return cls(EventExporter(sink, metrics, settings.queue_size), settings.include_text)

    @property
    def enabled(self) -> bool:
        return self.exporter is not None

    def start(self) -> None:
        if self.exporter is not None:
            self.exporter.start()

    async def stop(self) -> None:
        if self.exporter is not None:
            await self.exporter.stop()

    # -- what the gateway reports ----------------------------------------------------------------

    def session_opened(self, session_id: str, project: str | None, model: Any, transport: str) -> None:
        """A realtime session started serving (WebSocket, or the session of a WebRTC/SIP call)."""
        if self.exporter is None:
            return
        detail = {"model": str(model or ""), "transport": transport}
        self._open[session_id] = (time.monotonic(), project, detail)
        self._publish("session.opened", project, {"session_id": session_id}, detail=detail)

    def session_closed(self, session_id: str, reason: str | int | None) -> None:
        """A session ended; `reason` is why, or the WebSocket close code it ended with."""
        opened = self._open.pop(session_id, None)
        if self.exporter is None or opened is None:
            return
        started, project, detail = opened
        if not isinstance(reason, str):
            reason = CLOSE_REASONS.get(reason or 1006, f"close_code_{reason}")
        timings = {"duration_s": time.monotonic() - started}
        self._publish(
            "session.closed", project, {"session_id": session_id}, "closed", reason, timings, detail
        )

    def response_finished(self, run: ResponseRun) -> None:
        """A response ended (completed, cancelled or failed), with its latency."""
        if self.exporter is None:
            return
        status, reason = run.outcome
        ids = {"response_id": run.id, "session_id": run.turn.session_id}
        detail = {"input_text": _input_text(run), "output_text": run.text} if self.include_text else {}
        timings = {"latency_s": time.monotonic() - run.started}
        self._publish("response.done", run.turn.project_id, ids, status, reason, timings, detail)

    def call_started(self, call: _Call) -> None:
        """A WebRTC or SIP call went live (connecting, ringing or answered)."""
        if self.exporter is None:
            return
        self._open[call.id] = (time.monotonic(), call.project_id, {"transport": call.transport})
        self._publish(
            "call.started", call.project_id, {"call_id": call.id}, detail={"transport": call.transport}
        )

    def call_ended(self, call: _Call) -> None:
        """A call ended (and with it its session, if it had one), with how it ended."""
        if call.session is not None:
            self.session_closed(call.session.id, call.end_reason or "ended")
        opened = self._open.pop(call.id, None)
        if self.exporter is None or opened is None:
            return
        timings = {"duration_s": time.monotonic() - opened[0]}
        ids = {"call_id": call.id, "session_id": call.session.id if call.session is not None else ""}
        detail = {"transport": call.transport}
        self._publish(
            "call.ended", call.project_id, ids, "ended", call.end_reason or "ended", timings, detail
        )

    def record_closed(
        self, kind: str, record_id: str, project: str | None, reason: str, holder: str | None
    ) -> None:
        """Another replica's session or call was closed here: `holder` (its replica) is gone."""
        if self.exporter is None:
            return
        detail = {"replica_id": holder or ""}
        if kind == "call":
            self._publish("call.ended", project, {"call_id": record_id}, "ended", reason, detail=detail)
        else:
            self._publish(
                "session.closed", project, {"session_id": record_id}, "closed", reason, detail=detail
            )

    def policy_decision(self, action: str, allowed: bool, reason: str, project: str | None) -> None:
        """The access policy allowed or denied `action` for a principal of `project`."""
        if self.exporter is None:
            return
        outcome = "allowed" if allowed else "denied"
        self._publish("policy.decision", project, {}, outcome, reason, detail={"action": action})

    def _publish(
        self,
        kind: EventKind,
        project: str | None,
        ids: dict[str, str],
        outcome: str | None = None,
        reason: str | None = None,
        timings: dict[str, float] | None = None,
        detail: dict[str, str] | None = None,
    ) -> None:
        assert self.exporter is not None
        event = GatewayEvent(kind, project, ids, outcome, reason, timings or {}, detail or {})
        self.exporter.publish(event)


def _input_text(run: ResponseRun) -> str:
    """What the user said or typed last (its transcript, or its text), for `include_text`."""
    for item in reversed(run.turn.items):
        if item.get("role") == "user":
            parts = item.get("content") or []
            return " ".join(str(p.get("text") or p.get("transcript") or "") for p in parts).strip()
    return ""
