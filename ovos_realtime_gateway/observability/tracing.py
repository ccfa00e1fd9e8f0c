"""OpenTelemetry traces (off by default): a span per REST request, per realtime session, per turn
(VAD, STT, the OVOS skills' round trip, TTS first audio), exported over OTLP/HTTP.

The engine sees only `Span`: with tracing off every span is `NO_SPAN`, whose methods do nothing,
and the OpenTelemetry SDK is not even imported. The span the code runs in is `current_span` (a
context variable, so tasks started inside inherit it); `Span.child` starts a span under it.

A collector that is slow or down never slows a session: ended spans wait in a bounded queue for
a background thread to export them; past `max_queue_spans` they are dropped, and spans dropped
that way or lost in a failed export are counted in `ovos_realtime_trace_spans_dropped_total`.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from prometheus_client import CollectorRegistry, Counter

from ..log import current_trace
from ..version import __version__

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from opentelemetry.trace import Tracer

    from ..settings import TracingSettings

log = logging.getLogger("ovos_realtime.tracing")
Attribute = str | int | float | bool


class Span:
    """A span that records nothing (tracing off); `OtelSpan` is the recording kind."""

    recording = False

    def child(self, name: str, **attributes: Attribute | None) -> Span:
        return self

    def set(self, **attributes: Attribute | None) -> None:
        return None

    def event(self, name: str, **attributes: Attribute | None) -> None:
        return None

    def fail(self, reason: str) -> None:
        return None

    def end(self) -> None:
        return None

    @property
    def traceparent(self) -> str | None:
        """The W3C `traceparent` naming this span, for a message that should join the trace."""
        return None

    @property
    def ids(self) -> tuple[str, str] | None:
        """(trace_id, span_id) in hex."""
        return None

    @contextmanager
    def activated(self) -> Iterator[Span]:
        """Make this the current span (and its ids the logs') for the code inside."""
        token = current_span.set(self)
        trace_token = current_trace.set(self.ids)
        try:
            yield self
        finally:
            current_trace.reset(trace_token)
            current_span.reset(token)


NO_SPAN = Span()
current_span: contextvars.ContextVar[Span] = contextvars.ContextVar("ovos_realtime_span", default=NO_SPAN)


def _attributes(attributes: Mapping[str, Attribute | None]) -> dict[str, Attribute]:
    return {key.replace("__", "."): value for key, value in attributes.items() if value is not None}


class OtelSpan(Span):
    recording = True

    def __init__(self, tracer: Tracer, span: Any) -> None:
        self._tracer = tracer
        self._span = span
        context = span.get_span_context()
        self._ids = (format(context.trace_id, "032x"), format(context.span_id, "016x"))
        self._flags = format(int(context.trace_flags), "02x")

    def child(self, name: str, **attributes: Attribute | None) -> Span:
        from opentelemetry.trace import set_span_in_context

        parent = set_span_in_context(self._span)
        span = self._tracer.start_span(name, parent, attributes=_attributes(attributes))
        return OtelSpan(self._tracer, span)

    def set(self, **attributes: Attribute | None) -> None:
        self._span.set_attributes(_attributes(attributes))

    def event(self, name: str, **attributes: Attribute | None) -> None:
        self._span.add_event(name, _attributes(attributes))

    def fail(self, reason: str) -> None:
        from opentelemetry.trace import Status, StatusCode

        self._span.set_status(Status(StatusCode.ERROR, reason))

    def end(self) -> None:
        self._span.end()

    @property
    def traceparent(self) -> str | None:
        return f"00-{self._ids[0]}-{self._ids[1]}-{self._flags}"

    @property
    def ids(self) -> tuple[str, str] | None:
        return self._ids


class Tracing:
    """One gateway's tracer (its own TracerProvider: never the process-wide one, so a host
    process's own OpenTelemetry setup is left alone)."""

    def __init__(self, settings: TracingSettings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.dropped = Counter(
            "ovos_realtime_trace_spans_dropped",
            "Spans not exported: the export queue was full, or the collector failed or was unreachable.",
            registry=registry,
        )
        self._provider: TracerProvider | None = None
        self._tracer: Tracer | None = None
        if settings.enabled:
            self._start()

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def _start(self) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        s = self.settings
        resource = Resource.create({"service.name": s.service_name, "service.version": __version__})
        provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(s.sample_ratio)))
        exporter = OTLPSpanExporter(endpoint=s.otlp_endpoint, timeout=s.export_timeout_seconds)
        counting = CountingExporter(exporter, self.dropped.inc)
        batch = BatchSpanProcessor(
            cast("SpanExporter", counting),  # duck-typed: the SDK is imported only when tracing is on
            max_queue_size=s.max_queue_spans,
            schedule_delay_millis=1000,
            max_export_batch_size=min(512, s.max_queue_spans),
            export_timeout_millis=s.export_timeout_seconds * 1000,
        )
        bounded = BoundedProcessor(batch, s.max_queue_spans, counting, self.dropped.inc)
        provider.add_span_processor(cast("SpanProcessor", bounded))
        self._provider = provider
        self._tracer = provider.get_tracer("ovos_realtime", __version__)
        exporter_log = logging.getLogger("opentelemetry.exporter")
        if not any(isinstance(f, EveryMinuteFilter) for f in exporter_log.filters):
            exporter_log.addFilter(EveryMinuteFilter())  # a dead collector: a line a minute, not a second
        log.info("tracing on: spans go to %s", s.otlp_endpoint)

    def server_span(self, name: str, headers: Mapping[str, str], **attributes: Attribute | None) -> Span:
        """A span for a request that arrived, in the trace its W3C `traceparent` names (a missing
        or malformed one starts a new trace)."""
        if self._tracer is None:
            return NO_SPAN
        from opentelemetry.trace import SpanKind

        traceparent = headers.get("traceparent")  # aiohttp's headers: any case
        parent = None
        if traceparent is not None:
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

            carrier = {"traceparent": traceparent, "tracestate": headers.get("tracestate", "")}
            parent = TraceContextTextMapPropagator().extract(carrier)  # malformed: an empty context
        span = self._tracer.start_span(name, parent, kind=SpanKind.SERVER, attributes=_attributes(attributes))
        return OtelSpan(self._tracer, span)

    def root_span(self, name: str, **attributes: Attribute | None) -> Span:
        """A span that starts a trace of its own (a SIP call)."""
        if self._tracer is None:
            return NO_SPAN
        return OtelSpan(self._tracer, self._tracer.start_span(name, attributes=_attributes(attributes)))

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Export what is queued, for at most `timeout_s` (blocking: call it off the loop)."""
        provider, self._provider, self._tracer = self._provider, None, None
        if provider is None:
            return
        done = threading.Thread(target=provider.shutdown, name="ovos-realtime-trace-stop", daemon=True)
        done.start()
        done.join(timeout_s)


class EveryMinuteFilter(logging.Filter):
    """Lets one record a minute through (the exporter logs every failed export)."""

    def __init__(self, interval_s: float = 60.0) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._last = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.created - self._last < self._interval_s:
            return False
        self._last = record.created
        return True


class CountingExporter:
    """Counts the spans of failed exports as dropped; tells the bounded processor what left."""

    def __init__(self, inner: SpanExporter, dropped: Callable[[float], None]) -> None:
        self.inner = inner
        self._dropped = dropped
        self.on_taken: Callable[[int], None] = lambda _: None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.on_taken(len(spans))
        try:
            result = self.inner.export(spans)
        except Exception:  # the exporter must not kill the export thread
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            self._dropped(len(spans))
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


class BoundedProcessor:
    """Forwards ended spans to the batch processor while fewer than `capacity` wait for export;
    past that a span is dropped and counted (the SDK's own queue drops silently)."""

    def __init__(
        self, inner: Any, capacity: int, exporter: CountingExporter, dropped: Callable[[float], None]
    ) -> None:
        self.inner = inner
        self._capacity = capacity
        self._dropped = dropped
        self._waiting = 0
        self._lock = threading.Lock()
        exporter.on_taken = self._taken

    def _taken(self, count: int) -> None:
        with self._lock:
            self._waiting = max(0, self._waiting - count)

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None or not span.context.trace_flags.sampled:
            return
        with self._lock:
            full = self._waiting >= self._capacity
            if not full:
                self._waiting += 1
        if full:
            self._dropped(1)
            return
        self.inner.on_end(span)

    def _on_ending(self, span: Any) -> None:
        return None

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))
