"""Logging: named loggers by concern, and the request id of the current request in every line."""

from __future__ import annotations

import contextvars
import json
import logging
import time

current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ovos_realtime_request_id", default=None
)

access_log = logging.getLogger("ovos_realtime.access")


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record (from the record's extra, else the current request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


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


def configure_logging(level: str = "INFO", json_lines: bool = False) -> None:
    """Set up the `ovos_realtime` logger tree for a standalone process (the CLI)."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger("ovos_realtime")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
