"""Structured logs in Cloud Logging's JSON format (metrics are in `imangor.metrics`).

Every log line carries the request id and the trace of the request being served (from
`X-Cloud-Trace-Context` or W3C `traceparent`), so one request's lines group in Logs Explorer.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
trace_var: ContextVar[tuple[str, str | None] | None] = ContextVar("trace", default=None)

_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d+))?")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def parse_trace(cloud_trace: str | None, traceparent: str | None) -> tuple[str, str | None] | None:
    """(trace id, span id) from Google's or the W3C header, else None."""
    if traceparent and (m := _TRACEPARENT.match(traceparent.strip())):
        return m.group(1), m.group(2)
    if cloud_trace and (m := _CLOUD_TRACE.match(cloud_trace.strip())):
        # The span is a uint64 in decimal; anything longer is noise, and int() of a number
        # of over 4,300 digits raises. Such a span is dropped, the trace id kept.
        digits, span = m.group(2), None
        if digits and len(digits) <= 20 and (number := int(digits)) < 2**64:
            span = format(number, "016x")
        return m.group(1), span
    return None


class CloudLoggingFormatter(logging.Formatter):
    """One JSON object per line with the fields Cloud Logging lifts into the LogEntry."""

    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        self.project = project

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            # Error Reporting groups errors whose message holds the stack trace.
            message = f"{message}\n{''.join(traceback.format_exception(*record.exc_info))}"
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": message,
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        if request_id := request_id_var.get():
            entry["request_id"] = request_id
        if trace := trace_var.get():
            trace_id, span_id = trace
            prefix = f"projects/{self.project}/traces/" if self.project else ""
            entry["logging.googleapis.com/trace"] = f"{prefix}{trace_id}"
            if span_id:
                entry["logging.googleapis.com/spanId"] = span_id
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """One readable line per event, for a developer's terminal (LOG_FORMAT=text):
    `17:06:56 INFO  imangor.request  POST /auth/token 200 (12.3 ms) [request id]`."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        line = f"{when} {record.levelname:<5} {record.name}  {record.getMessage()}"
        fields = getattr(record, "fields", {})
        http = fields.get("httpRequest")
        if isinstance(http, dict) and "latency" in http:
            line += f" ({float(http['latency'].rstrip('s')) * 1000:.1f} ms)"
        if request_id := request_id_var.get():
            line += f" [{request_id}]"
        for name, value in fields.items():  # e.g. a locally logged mail's body
            if isinstance(value, str):
                line += f"\n    {name}:\n" + "\n".join(f"      {v}" for v in value.splitlines())
        if record.exc_info:
            line += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return line


class DeadConnectionNoise(logging.Filter):
    """SQLAlchemy's pool logs an ERROR with a traceback whenever closing or resetting a
    connection fails because the connection is already dead: during a database outage, one
    per pooled connection, beside the request's own line saying the database is down. Those
    become one WARNING line each; any other pool error keeps its level and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("sqlalchemy.pool") or not record.exc_info:
            return True
        error = record.exc_info[1]
        if isinstance(error, OSError) or type(error).__module__.startswith("pg8000"):
            record.msg, record.args = f"{record.getMessage()}: {type(error).__name__}: {error}", ()
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


_configured = False


def configure_logging(
    level: str = "INFO", project: str | None = None, *, text: bool = False
) -> None:
    """Send every logger's records to stdout, as JSON for Cloud Logging or, with `text`, as
    readable lines (idempotent: the first call decides)."""
    global _configured
    if _configured:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(TextFormatter() if text else CloudLoggingFormatter(project))
    handler.addFilter(DeadConnectionNoise())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic announces each of its autogenerate plugins at INFO on every migration run.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    _configured = True
