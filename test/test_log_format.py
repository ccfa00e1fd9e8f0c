"""The log handler the CLI installs: JSON lines with the context's ids, the text format, and the
redaction filter (the second line of defence behind log calls that never pass secrets)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from ovos_realtime_gateway.log import (
    configure_logging,
    current_request_id,
    log_context,
    redact,
    wants_json,
)
from ovos_realtime_gateway.observability.tracing import NO_SPAN


@pytest.fixture
def restore_logging() -> Iterator[None]:
    ours, root = logging.getLogger("ovos_realtime"), logging.getLogger()
    saved = (ours.handlers[:], ours.level, ours.propagate, root.handlers[:], root.level)
    yield
    ours.handlers[:], ours.level, ours.propagate = saved[0], saved[1], saved[2]
    root.handlers[:], root.level = saved[3], saved[4]


def test_json_lines_carry_the_contexts_ids_and_mask_secrets(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream)
    log = logging.getLogger("ovos_realtime.engine")
    token = current_request_id.set("req_1")
    try:
        with log_context(session_id="sess_1", project="proj_1"), NO_SPAN.activated():
            log.debug("leaked %s and ek_%s and Bearer abcdefghijk", "sk-ovos-abc_def123456", "x" * 20)
            try:
                raise ValueError("whsec_c2VjcmV0c2VjcmV0 in a traceback")
            except ValueError:
                log.exception("failed")
        log.info("outside")
    finally:
        current_request_id.reset(token)
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "leaked sk-ovos-[REDACTED] and ek_[REDACTED] and Bearer [REDACTED]"
    assert {k: first[k] for k in ("level", "logger", "request_id", "session_id", "project")} == {
        "level": "DEBUG",
        "logger": "ovos_realtime.engine",
        "request_id": "req_1",
        "session_id": "sess_1",
        "project": "proj_1",
    }
    assert "trace_id" not in first and "call_id" not in first  # unknown: left out
    assert "whsec_[REDACTED]" in second["exc"] and "c2VjcmV0" not in second["exc"]
    assert "session_id" not in third and "request_id" in third  # the session's context ended


def test_the_text_format_and_auto(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "text", stream)
    with log_context(session_id="sess_2"):
        logging.getLogger("ovos_realtime.transport").info("session closed")
    logging.getLogger("ovos_realtime.transport").debug("not at INFO")
    (line,) = stream.getvalue().splitlines()
    assert line.endswith("INFO ovos_realtime.transport [sess_2] session closed"), line

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert wants_json("auto", io.StringIO()) and not wants_json("auto", Terminal())
    assert wants_json("json", Terminal()) and not wants_json("text", io.StringIO())


def test_other_libraries_log_at_info_at_least(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream)
    logging.getLogger("ovos_bus_client").debug("a whole message with what the user said")
    logging.getLogger("aiohttp.server").warning("a warning")
    assert [json.loads(line)["logger"] for line in stream.getvalue().splitlines()] == ["aiohttp.server"]


def test_redact_leaves_ordinary_words_alone() -> None:
    words = "task-scheduler risk-averse item_ek_abcdefghij"
    assert redact(words) == words
    assert redact("key=sk-proj-abcdefgh") == "key=sk-[REDACTED]"


def test_log_and_tracing_settings_name_what_is_wrong() -> None:
    from pydantic import ValidationError

    from ovos_realtime_gateway.settings import GatewaySettings

    with pytest.raises(ValidationError, match="otlp_endpoint"):
        GatewaySettings.layered({"tracing": {"enabled": True, "otlp_endpoint": "collector:4318"}})
    with pytest.raises(ValidationError, match="log_format"):
        GatewaySettings.layered({"log_format": "yaml"})
    settings = GatewaySettings.layered({"log_level": "debug", "log_json": True})
    assert settings.log_level == "DEBUG" and settings.effective_log_format == "json"
    assert GatewaySettings().tracing.enabled is False  # off by default
    assert GatewaySettings.layered({"tracing": {"otlp_endpoint": "http://c:4318"}}).tracing.otlp_endpoint == (
        "http://c:4318/v1/traces"
    )


def test_a_full_export_queue_drops_and_counts_spans_without_blocking() -> None:
    """Fault injected: an exporter that hangs (a collector that never answers). Ending spans
    never waits for it; past the queue's capacity they are dropped and counted."""
    import threading

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
    from prometheus_client import CollectorRegistry, Counter

    from ovos_realtime_gateway.observability.tracing import BoundedProcessor, CountingExporter

    release = threading.Event()

    class HangingExporter:
        def export(self, spans: object) -> SpanExportResult:
            release.wait(30)
            return SpanExportResult.FAILURE

        def shutdown(self) -> None:
            return None

        def force_flush(self, timeout_millis: int = 0) -> bool:
            return True

    dropped = Counter("dropped", "spans dropped", registry=CollectorRegistry())
    counting = CountingExporter(HangingExporter(), dropped.inc)  # type: ignore[arg-type]  # a stand-in exporter for an injected fault (a hang), not the SDK's class
    batch = BatchSpanProcessor(counting, max_queue_size=16, schedule_delay_millis=10, max_export_batch_size=4)  # type: ignore[arg-type]  # a stand-in exporter for an injected fault (a hang), not the SDK's class
    provider = TracerProvider()
    provider.add_span_processor(BoundedProcessor(batch, 16, counting, dropped.inc))  # type: ignore[arg-type]  # a stand-in exporter for an injected fault (a hang), not the SDK's class
    tracer = provider.get_tracer("test")
    for n in range(200):
        tracer.start_span(f"span {n}").end()
    assert 200 - 16 - 4 <= dropped._value.get() < 200  # the queue and one batch in the exporter
    release.set()
    provider.shutdown()
    assert dropped._value.get() > 200 - 16 - 4  # the failed exports are counted too
