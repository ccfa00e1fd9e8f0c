"""Logging: named loggers by concern; every line carries the ids of the request, session, call and
project it belongs to (from `contextvars`), and the trace it is part of when tracing is on.

Two formats: JSON lines (one object per line, for containers and log shippers) and a human one
for a terminal. Nothing secret is logged by design (the log calls name ids, never keys, audio or
what a user said or typed); `RedactingFilter` is a second line that masks anything shaped like a
key or a client secret that still reaches a handler.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, TextIO

LogFormat = Literal["json", "text", "auto"]

current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ovos_realtime_request_id", default=None
)
current_session_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ovos_realtime_session_id", default=None
)
current_call_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ovos_realtime_call_id", default=None
)
current_project: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ovos_realtime_project", default=None
)
current_trace: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "ovos_realtime_trace", default=None
)
"""(trace_id, span_id) in hex of the span the code runs in, when tracing is on."""

access_log = logging.getLogger("ovos_realtime.access")
CONTEXT_FIELDS = ("request_id", "session_id", "call_id", "project", "trace_id", "span_id")


@contextmanager
def log_context(**ids: str | None) -> Iterator[None]:
    """Set some of session_id / call_id / project for the lines logged inside (and in the tasks
    started inside, which copy the context)."""
    variables = {"session_id": current_session_id, "call_id": current_call_id, "project": current_project}
    tokens = [(variables[name], variables[name].set(value)) for name, value in ids.items()]
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)


class ContextFilter(logging.Filter):
    """Adds the context's ids to every record (a record's own `extra` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id.get()
        if getattr(record, "session_id", None) is None:
            record.session_id = current_session_id.get()
        if getattr(record, "call_id", None) is None:
            record.call_id = current_call_id.get()
        if getattr(record, "project", None) is None:
            record.project = current_project.get()
        if getattr(record, "trace_id", None) is None:
            trace = current_trace.get()
            record.trace_id, record.span_id = trace if trace is not None else (None, None)
        return True


RequestIdFilter = ContextFilter  # the name it had when it added only the request id

SECRET_PATTERN = re.compile(
    r"(?<![A-Za-z0-9_])(sk-ovos-|ek_|sk-|whsec_)[A-Za-z0-9_\-+/=]{6,}|(?i:bearer)\s+[A-Za-z0-9_\-.~+/]{8,}=*"
)
"""Project keys (`sk-ovos-…`), client secrets (`ek_…`), other `sk-` keys, webhook secrets
(`whsec_…`), bearer tokens."""


def redact(text: str) -> str:
    return SECRET_PATTERN.sub(_mask, text)


def _mask(match: re.Match[str]) -> str:
    prefix = match.group(1)
    return f"{prefix}[REDACTED]" if prefix else "Bearer [REDACTED]"


class RedactingFilter(logging.Filter):
    """Masks key- and secret-shaped text in a record's message and traceback (the second line
    of defence: the log calls themselves never pass such values)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then the context's ids that are
    known (request_id, session_id, call_id, project, trace_id, span_id), then `exc`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None and value != "-":
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time level logger [request session call] message`, for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        names = ("request_id", "session_id", "call_id")
        ids = " ".join(str(value) for name in names if (value := getattr(record, name, None)))
        record.context = f"[{ids}] " if ids else ""
        return super().format(record)


TEXT_LAYOUT = "%(asctime)s %(levelname)s %(name)s %(context)s%(message)s"


class MalformedRequestFilter(logging.Filter):
    """aiohttp logs a traceback for every malformed HTTP request it rejects with 400 (a NUL byte
    in a header, say): a client's mistake, not ours. One warning line is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            reason = str(error.message).strip().splitlines()[0] if error.message else "bad request"
            record.msg, record.args = "malformed HTTP request rejected (%s): %s", (error.code, reason)
        return True


def quiet_malformed_requests() -> None:
    """Install MalformedRequestFilter on aiohttp's server logger (idempotent)."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server_log.filters):
        server_log.addFilter(MalformedRequestFilter())


def wants_json(log_format: LogFormat, stream: TextIO) -> bool:
    """`auto`: JSON unless the stream is a terminal (a container's or a service's log is not)."""
    if log_format == "auto":
        isatty = getattr(stream, "isatty", None)
        return not (isatty is not None and isatty())
    return log_format == "json"


LIBRARY_FLOOR = logging.INFO
"""Other libraries' loggers log at this level at least: some log whole messages at DEBUG
(an OVOS message holds what the user said)."""


def configure_logging(
    level: str = "INFO", log_format: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Set up logging for a standalone process (the CLI): the `ovos_realtime` loggers at `level`,
    everything else (aiohttp, OVOS libraries) through the same handler at INFO or above."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    if wants_json(log_format, handler.stream):
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter(TEXT_LAYOUT))
    ours = logging.getLogger("ovos_realtime")
    ours.handlers[:] = [handler]
    ours.setLevel(level.upper())
    ours.propagate = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(logging.getLevelName(level.upper()), LIBRARY_FLOOR))
