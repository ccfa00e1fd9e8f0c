"""Every Prometheus metric of the gateway, in one registry per application instance."""

from __future__ import annotations

import contextlib
import platform

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

from ..version import __version__

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
VOICE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
"""A spoken turn: under 0.3 s feels instant, 1 s is a pause, past 3 s the user repeats themself."""
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
CALL_OUTCOMES = {
    "connect_timeout": "failed",  # WebRTC media never connected
    "offer_refused": "failed",  # the SDP offer could not be answered
    "ring_timeout": "failed",  # SIP: nobody accepted the call in time
    "rejected": "rejected",  # SIP: the application declined it
    "caller_cancelled": "abandoned",  # SIP: the caller gave up while it rang
}
"""How a call ended → its outcome; every other reason (hangup, session_closed, …) is `completed`."""


def call_outcome(reason: str) -> str:
    """`completed`, `failed`, `rejected` or `abandoned`: what a call success ratio divides."""
    return CALL_OUTCOMES.get(reason, "completed")


class GatewayMetrics:
    """The gateway's metrics; a registry per instance so several gateways can share a process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes & co: memory growth alerts
        self.http_requests = Counter(
            "ovos_realtime_http_requests",
            "HTTP requests handled, by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "ovos_realtime_http_request_duration_seconds",
            "Time from request received to response ready, by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.auth_failures = Counter(
            "ovos_realtime_auth_failures",
            "Requests refused because credentials were missing, wrong or expired.",
            ["reason"],
            registry=r,
        )
        self.policy_denials = Counter(
            "ovos_realtime_policy_denials",
            "Requests denied by the Rego policy, by action.",
            ["action"],
            registry=r,
        )
        self.policy_decisions = Counter(
            "ovos_realtime_policy_decisions",
            "Policy decisions, by action and result: allowed, denied, unavailable (the policy could "
            "not be asked; refused). The denial's reason text is in the audit log.",
            ["action", "result"],
            registry=r,
        )
        self.rate_limit_decisions = Counter(
            "ovos_realtime_rate_limit_decisions",
            "Rate-limit checks, by limit (requests: per minute; sessions: concurrent sessions; "
            "auth_failures: failed authentications per address) and result (allowed, throttled).",
            ["limit", "result"],
            registry=r,
        )
        self.cluster_forwards = Counter(
            "ovos_realtime_cluster_forwards",
            "Requests for a call another replica holds, forwarded to it over the signed hop, by kind "
            "(control: accept/reject/refer/hangup; sideband) and result (answered: the owner's answer "
            "went back; owner_gone: it had ended, 404; unreachable: its lease lives but it did not "
            "answer, 503).",
            ["kind", "result"],
            registry=r,
        )
        self.shared_limits_fallbacks = Counter(
            "ovos_realtime_shared_limits_fallbacks",
            "Checks this replica made on its own because the Redis of shared_limits was unavailable "
            "(down, refusing, or slower than shared_limits.timeout_seconds), by limit (requests, "
            "sessions, auth_failures; heartbeat: the session lease was not renewed).",
            ["limit"],
            registry=r,
        )
        self.rate_limited = Counter(
            "ovos_realtime_rate_limited",
            "Requests refused by a rate limit, by scope (project or key).",
            ["scope"],
            registry=r,
        )
        self.client_secrets_created = Counter(
            "ovos_realtime_client_secrets_created",
            "Ephemeral client secrets (ek_) minted, by session type.",
            ["session_type"],
            registry=r,
        )
        self.turn_stage_seconds = Histogram(
            "ovos_realtime_turn_stage_seconds",
            "Time spent in each stage of a turn: stt (plugin call; for a streamed utterance, commit to "
            "transcript), tts (plugin call per sentence, until its first audio), "
            "skills_first_speak (utterance sent to first speak from OVOS).",
            ["stage"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.turn_latency = Histogram(
            "ovos_realtime_turn_latency_seconds",
            "Time from the end of the user's turn (audio committed, by server VAD or the client; "
            "for a typed turn, the response's start) to: transcript (its transcription completed), "
            "first_answer (the response's first text) and first_audio (its first audio).",
            ["stage"],
            buckets=VOICE_BUCKETS,
            registry=r,
        )
        self.speech_failures = Counter(
            "ovos_realtime_speech_failures",
            "Speech plugin failures, by component (stt, tts, vad), plugin and kind (error, timeout).",
            ["component", "plugin", "kind"],
            registry=r,
        )
        self.transcriptions = Counter(
            "ovos_realtime_transcriptions",
            "Committed turns transcribed, by how: streamed (decoded while spoken) or batch.",
            ["mode"],
            registry=r,
        )
        self.responses = Counter(
            "ovos_realtime_responses",
            "Responses by how they ended: status completed, cancelled (reason: client_cancelled, "
            "turn_detected) or failed (reason: the error code, e.g. responder_unavailable, "
            "ovos_timeout, tts_failed).",
            ["status", "reason"],
            registry=r,
        )
        self.ready = Gauge(
            "ovos_realtime_ready",
            "1 when a part /readyz checks is usable, by check: messagebus, skills, speech, vad.",
            ["check"],
            registry=r,
        )
        self.build_info = Gauge(
            "ovos_realtime_build_info",
            "Always 1; the labels say which gateway and Python serve.",
            ["version", "python"],
            registry=r,
        )
        self.build_info.labels(version=__version__, python=platform.python_version()).set(1)
        self.realtime_sessions = Gauge(
            "ovos_realtime_sessions_open",
            "Realtime sessions open now (all transports).",
            registry=r,
        )
        self.draining = Gauge(
            "ovos_realtime_draining",
            "1 while the gateway drains (SIGTERM): it refuses new sessions and calls while the open "
            "ones finish, for up to drain_seconds.",
            registry=r,
        )
        self.policy_version = Gauge(
            "ovos_realtime_policy_version",
            "The version of the policy stored by `policy apply` (or `policy clear`) that decides here "
            "now; 0: none was stored, the policy_file decides. Replicas that differ did not load one.",
            registry=r,
        )
        self.connections_closed = Counter(
            "ovos_realtime_connections_closed",
            "Connections closed before their first request was complete, by reason: header_timeout "
            "(header_timeout_seconds passed) or too_many_pending (max_pending_connections).",
            ["reason"],
            registry=r,
        )
        self.connections_pending = Gauge(
            "ovos_realtime_connections_pending",
            "Connections open now that have not yet completed their first request's headers.",
            registry=r,
        )
        self.slow_consumers = Counter(
            "ovos_realtime_slow_consumers",
            "Connections closed because the client stopped reading and the send queue filled.",
            registry=r,
        )
        self.client_event_errors = Counter(
            "ovos_realtime_client_event_errors",
            "Client events answered with an error event, by error code.",
            ["code"],
            registry=r,
        )
        self.peer_connections = Gauge(
            "ovos_realtime_peer_connections",
            "WebRTC peer connections alive now (a leak shows here).",
            registry=r,
        )
        self.calls = Counter(
            "ovos_realtime_calls",
            "Calls ended, by transport, how they ended (reason) and outcome: completed, failed "
            "(never connected or answered), rejected, abandoned (the caller gave up).",
            ["transport", "reason", "outcome"],
            registry=r,
        )
        self.calls_active = Gauge(
            "ovos_realtime_calls_active",
            "Calls in progress now (ringing, connecting or connected), by transport.",
            ["transport"],
            registry=r,
        )
        self.audit_backlog = Gauge(
            "ovos_realtime_audit_backlog",
            "Audit entries waiting to be written to the store.",
            registry=r,
        )
        self.store_write_seconds = Histogram(
            "ovos_realtime_store_write_seconds",
            "Time from a store write being queued to it being committed, by operation (session, "
            "call, items, audit, retention): the queue wait behind other queries included.",
            ["operation"],
            buckets=STORE_BUCKETS,
            registry=r,
        )
        self.event_loop_lag = Histogram(
            "ovos_realtime_event_loop_lag_seconds",
            "How late the event loop ran a timer (sampled every half second): blocking work on "
            "the loop delays every session.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.store_deleted_rows = Counter(
            "ovos_realtime_store_deleted_rows",
            "Rows deleted by retention, by table.",
            ["table"],
            registry=r,
        )
        self.events_published = Counter(
            "ovos_realtime_events_published",
            "Events the event bridge delivered to its sink (Redis), by kind.",
            ["kind"],
            registry=r,
        )
        self.events_dropped = Counter(
            "ovos_realtime_events_dropped",
            "Events the event bridge dropped, by reason: queue_full (event_bridge.queue_size "
            "waiting) or sink_down (Redis down, refusing, or slower than the send timeout).",
            ["reason"],
            registry=r,
        )
        self.secret_refresh_failures = Counter(
            "ovos_realtime_secret_refresh_failures",
            "Re-reads of a referenced secret (vault:, file:, env:) that failed, by setting; the "
            "last value read stays in use.",
            ["setting"],
            registry=r,
        )
        self.key_next_expiry = Gauge(
            "ovos_realtime_key_next_expiry_timestamp_seconds",
            "When the project's first usable key stops working if nothing is done (Unix time): the "
            "end of a rotated key's grace, or a key's automatic rotation plus its grace. No sample: "
            "none of its keys expires.",
            ["project"],
            registry=r,
        )
        self._start_at_zero()

    def _start_at_zero(self) -> None:
        """Series of bounded label sets exist from the start: a rate over them is 0, not missing,
        and the first observation is not lost to Prometheus (it sees the counter go 0 → 1)."""
        for transport in ("webrtc", "sip"):
            self.calls_active.labels(transport=transport)
        for reason in ("header_timeout", "too_many_pending"):
            self.connections_closed.labels(reason=reason)
        for stage in ("transcript", "first_answer", "first_audio"):
            self.turn_latency.labels(stage=stage)
        for stage in ("stt", "tts", "skills_first_speak"):
            self.turn_stage_seconds.labels(stage=stage)
        for operation in ("session", "call", "items", "audit", "retention"):
            self.store_write_seconds.labels(operation=operation)

    def observe_turn(self, stage: str, seconds: float) -> None:
        self.turn_latency.labels(stage=stage).observe(seconds)

    def speech_plugins(self, stt: str, tts: str | None, vad: str) -> None:
        """Start the configured plugins' failure counters at 0 (a rate of 0, not a missing series)."""
        for component, plugin in (("stt", stt), ("tts", tts), ("vad", vad)):
            if plugin:
                for kind in ("error", "timeout"):
                    self.speech_failures.labels(component=component, plugin=plugin, kind=kind)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def set_key_expiries(self, expiries: dict[str, float | None]) -> None:
        """One sample per project with an expiring key; projects without one lose theirs."""
        for project, ends in expiries.items():
            if ends is not None:
                self.key_next_expiry.labels(project=project).set(ends)
            else:
                with contextlib.suppress(KeyError):
                    self.key_next_expiry.remove(project)
