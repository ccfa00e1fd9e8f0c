"""The gateway's Grafana dashboards as code (the model and its JSON rendering: `grafana.py`).

`python -m ovos_realtime_gateway.observability.dashboards [DIR]` writes one file per dashboard
(default `deploy/grafana/dashboards`); `--check` exits 1 when a file there differs from what this
module generates. Every query selects `instance=~"$instance"` (a dashboard variable) and ranges
over `$__rate_interval`; test/test_prometheus.py runs each one against a real Prometheus.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .grafana import GW, JOB, RI, Dashboard, Panel, q, quantile, rate, ratio, render

OVERVIEW = Dashboard(
    "ovos-realtime-overview",
    "ovos-realtime / Overview",
    "Is the gateway up and ready, how much it serves, how many answers fail, how long a turn takes.",
    (
        Panel("Gateways up", "Gateways Prometheus scrapes now.", (q(f"sum(up{{{JOB}}})"),), kind="stat"),
        Panel(
            "Ready checks failing",
            "Parts /readyz checks that are not usable now (0 is healthy).",
            (q(f"count(ovos_realtime_ready{{{GW}}} == 0) or vector(0)"),),
            kind="stat",
        ),
        Panel(
            "Sessions open",
            "Realtime sessions open now, every transport.",
            (q(f"sum(ovos_realtime_sessions_open{{{GW}}})"),),
            kind="stat",
        ),
        Panel(
            "Calls in progress",
            "WebRTC and SIP calls ringing, connecting or connected.",
            (q(f"sum(ovos_realtime_calls_active{{{GW}}})"),),
            kind="stat",
        ),
        Panel(
            "Readiness by check",
            "1 when the part is usable: messagebus, skills, speech, vad.",
            (q(f"min by (check) (ovos_realtime_ready{{{GW}}})", "{{check}}"),),
            max=1,
        ),
        Panel(
            "HTTP requests by status",
            "REST requests per second by status code.",
            (q(rate("ovos_realtime_http_requests_total", "status"), "{{status}}"),),
            unit="reqps",
            stack=True,
        ),
        Panel(
            "HTTP 5xx ratio",
            "Share of REST requests answered 5xx (the OvosRealtimeErrorRatio alert fires over 5 %).",
            (q(ratio("ovos_realtime_http_requests_total", "instance", 'status=~"5.."'), "{{instance}}"),),
            unit="percentunit",
        ),
        Panel(
            "Responses by outcome",
            "Responses per second by status and reason (failed: the error code).",
            (q(rate("ovos_realtime_responses_total", "status, reason"), "{{status}} {{reason}}"),),
            unit="ops",
            stack=True,
        ),
        Panel(
            "Response failure ratio",
            "Share of responses that failed (OvosRealtimeResponsesFailing fires over 20 %).",
            (q(ratio("ovos_realtime_responses_total", "instance", 'status="failed"'), "{{instance}}"),),
            unit="percentunit",
        ),
        Panel(
            "Turn latency p95",
            "From the end of the user's turn to its transcript, first answer and first audio.",
            (q(quantile(0.95, "ovos_realtime_turn_latency_seconds", "stage"), "{{stage}}"),),
            unit="s",
        ),
        Panel(
            "Versions",
            "Gateways by version and Python.",
            (
                q(
                    f"count by (version, python) (ovos_realtime_build_info{{{GW}}})",
                    "{{version}} python {{python}}",
                ),
            ),
        ),
    ),
)

CALLS = Dashboard(
    "ovos-realtime-calls",
    "ovos-realtime / Calls",
    "WebRTC and SIP calls: how many, how they end, the share that succeed.",
    (
        Panel(
            "Calls in progress",
            "Calls ringing, connecting or connected, by transport.",
            (q(f"sum by (transport) (ovos_realtime_calls_active{{{GW}}})", "{{transport}}"),),
        ),
        Panel(
            "Call success ratio",
            "Share of ended calls that connected and ended normally (completed), by transport.",
            (q(ratio("ovos_realtime_calls_total", "transport", 'outcome="completed"'), "{{transport}}"),),
            unit="percentunit",
            max=1,
        ),
        Panel(
            "Calls ended by outcome",
            "Calls ended per second: completed, failed (never connected or answered), rejected, abandoned.",
            (q(rate("ovos_realtime_calls_total", "transport, outcome"), "{{transport}} {{outcome}}"),),
            unit="ops",
            stack=True,
        ),
        Panel(
            "Calls ended by reason",
            "Calls ended per second by why: hangup, session_closed, connect_timeout, ring_timeout, …",
            (q(rate("ovos_realtime_calls_total", "transport, reason"), "{{transport}} {{reason}}"),),
            unit="ops",
            stack=True,
        ),
        Panel(
            "WebRTC peer connections",
            "Peer connections alive (should follow WebRTC calls in progress; a climb alone is a leak).",
            (q(f"sum(ovos_realtime_peer_connections{{{GW}}})", "peer connections"),),
        ),
    ),
)

SPEECH = Dashboard(
    "ovos-realtime-speech",
    "ovos-realtime / Speech pipeline",
    "VAD, STT, OVOS skills and TTS: latency of each stage, and their failures by plugin.",
    (
        Panel(
            "Turn latency p50",
            "From the end of the user's turn (audio committed) to: transcript, first_answer, first_audio.",
            (q(quantile(0.5, "ovos_realtime_turn_latency_seconds", "stage"), "{{stage}}"),),
            unit="s",
        ),
        Panel(
            "Turn latency p95",
            "As p50, the slowest 5 %. Under 1 s to first audio feels conversational.",
            (q(quantile(0.95, "ovos_realtime_turn_latency_seconds", "stage"), "{{stage}}"),),
            unit="s",
        ),
        Panel(
            "Plugin stage p95",
            "stt: the plugin's decode; skills_first_speak: OVOS's first answer; tts: a sentence to its "
            "first audio.",
            (q(quantile(0.95, "ovos_realtime_turn_stage_seconds", "stage"), "{{stage}}"),),
            unit="s",
        ),
        Panel(
            "Transcriptions by mode",
            "Turns transcribed per second: streamed (decoded while spoken) or batch (after the turn).",
            (q(rate("ovos_realtime_transcriptions_total", "mode"), "{{mode}}"),),
            unit="ops",
            stack=True,
        ),
        Panel(
            "Speech plugin failures",
            "STT, TTS and VAD failures per second, by plugin and kind (error, timeout).",
            (
                q(
                    rate("ovos_realtime_speech_failures_total", "component, plugin, kind"),
                    "{{component}} {{plugin}} {{kind}}",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Responses not completed, by reason",
            "Responses per second that failed (error code: ovos_timeout, tts_failed, …) or were "
            "cancelled (client_cancelled, turn_detected: the user spoke over the answer).",
            (
                q(
                    rate("ovos_realtime_responses_total", "status, reason", 'status!="completed"'),
                    "{{status}} {{reason}}",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Speech readiness",
            "1 when the speech plugins (STT/TTS) and the VAD are loaded and usable.",
            (q(f'min by (check) (ovos_realtime_ready{{{GW}, check=~"speech|vad"}})', "{{check}}"),),
            max=1,
        ),
    ),
)

SECURITY = Dashboard(
    "ovos-realtime-security",
    "ovos-realtime / Security",
    "Who is refused and why: authentication failures, policy denials, rate limits, shed connections.",
    (
        Panel(
            "Auth failures by reason",
            "Requests refused per second for missing, wrong, expired or throttled credentials.",
            (q(rate("ovos_realtime_auth_failures_total", "reason"), "{{reason}}"),),
            unit="reqps",
        ),
        Panel(
            "Policy decisions",
            "Policy decisions per second by action and result (allowed, denied, unavailable).",
            (q(rate("ovos_realtime_policy_decisions_total", "action, result"), "{{action}} {{result}}"),),
            unit="ops",
        ),
        Panel(
            "Policy denial ratio",
            "Share of policy decisions that denied the request.",
            (
                q(
                    ratio("ovos_realtime_policy_decisions_total", "instance", 'result="denied"'),
                    "{{instance}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Rate-limit decisions",
            "Checks per second by limit (requests, sessions, auth_failures) and result (allowed, throttled).",
            (q(rate("ovos_realtime_rate_limit_decisions_total", "limit, result"), "{{limit}} {{result}}"),),
            unit="ops",
        ),
        Panel(
            "Throttled requests by scope",
            "Requests refused 429 per second by the request limit that was full: project or key.",
            (q(rate("ovos_realtime_rate_limited_total", "scope"), "{{scope}}"),),
            unit="reqps",
        ),
        Panel(
            "Connections shed",
            "Connections closed before their first request: header_timeout (slow clients) or "
            "too_many_pending.",
            (q(rate("ovos_realtime_connections_closed_total", "reason"), "{{reason}}"),),
            unit="ops",
        ),
        Panel(
            "Client event errors by code",
            "Realtime client events answered with an error event, per second, by code.",
            (q(rate("ovos_realtime_client_event_errors_total", "code"), "{{code}}"),),
            unit="ops",
        ),
        Panel(
            "Client secrets minted",
            "Ephemeral ek_ secrets minted per second, by session type.",
            (q(rate("ovos_realtime_client_secrets_created_total", "session_type"), "{{session_type}}"),),
            unit="ops",
        ),
    ),
)

CAPACITY = Dashboard(
    "ovos-realtime-capacity",
    "ovos-realtime / Capacity",
    "How close a gateway is to its limits: sessions, event-loop lag, store latency, memory, CPU.",
    (
        Panel(
            "Sessions and calls",
            "Realtime sessions open (every transport) and calls in progress.",
            (
                q(f"sum by (instance) (ovos_realtime_sessions_open{{{GW}}})", "sessions {{instance}}"),
                q(f"sum by (instance) (ovos_realtime_calls_active{{{GW}}})", "calls {{instance}}"),
            ),
        ),
        Panel(
            "Event-loop lag p99",
            "How late the event loop runs a timer; blocking work on the loop delays every session.",
            (q(quantile(0.99, "ovos_realtime_event_loop_lag_seconds", "instance"), "{{instance}}"),),
            unit="s",
        ),
        Panel(
            "Store write p95 by operation",
            "From a write being queued to committed: session, call, items, audit, retention.",
            (q(quantile(0.95, "ovos_realtime_store_write_seconds", "operation"), "{{operation}}"),),
            unit="s",
        ),
        Panel(
            "Audit backlog",
            "Audit entries waiting to be written (OvosRealtimeStoreBehind fires over 1,000).",
            (q(f"max by (instance) (ovos_realtime_audit_backlog{{{GW}}})", "{{instance}}"),),
        ),
        Panel(
            "HTTP latency p95 by route",
            "Time to answer a REST request, by route template.",
            (q(quantile(0.95, "ovos_realtime_http_request_duration_seconds", "route"), "{{route}}"),),
            unit="s",
        ),
        Panel(
            "Resident memory",
            "The gateway process's resident memory (OvosRealtimeMemoryGrowing watches its slope).",
            (q(f"process_resident_memory_bytes{{{JOB}}}", "{{instance}}"),),
            unit="bytes",
        ),
        Panel(
            "CPU",
            "CPU seconds per second used by the gateway process (1 = one core).",
            (q(f"rate(process_cpu_seconds_total{{{JOB}}}[{RI}])", "{{instance}}"),),
            unit="percentunit",
        ),
        Panel(
            "Open file descriptors",
            "File descriptors open (sockets included) against the process limit.",
            (
                q(f"process_open_fds{{{JOB}}}", "open {{instance}}"),
                q(f"process_max_fds{{{JOB}}}", "limit {{instance}}"),
            ),
        ),
        Panel(
            "Slow consumers and pending connections",
            "Connections closed because the client stopped reading (per second), and connections "
            "waiting for their first request's headers now.",
            (
                q(rate("ovos_realtime_slow_consumers_total", "instance"), "slow consumers {{instance}}"),
                q(f"sum by (instance) (ovos_realtime_connections_pending{{{GW}}})", "pending {{instance}}"),
            ),
        ),
    ),
)

DASHBOARDS = (OVERVIEW, CALLS, SPEECH, SECURITY, CAPACITY)


def files() -> dict[str, str]:
    """File name → content, for every dashboard."""
    return {
        f"{d.uid.removeprefix('ovos-realtime-')}.json": json.dumps(render(d), indent=2) + "\n"
        for d in DASHBOARDS
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write (or --check) the Grafana dashboards.")
    parser.add_argument("directory", nargs="?", default="deploy/grafana/dashboards", type=Path)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a file differs from the generated one"
    )
    args = parser.parse_args(argv)
    stale = []
    for name, text in files().items():
        path = args.directory / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        sys.stderr.write(f"out of date (run python -m {__name__}): {', '.join(stale)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
