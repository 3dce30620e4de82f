"""Logging set-up: one line per event, JSON or console, each stamped with the request id.

Every logged value is escaped on its way out (`escape_controls`): a path, a header or an
exception message carrying CR/LF, ANSI escapes or bidi overrides cannot forge a line, colour a
terminal or reorder what a reader sees. Done here, once, so no call site has to remember it.
"""

import logging
import re
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic_core import to_json

AUDIT_LOGGER = "app.audit"
# Libraries whose DEBUG lines carry the values a statement was run with.
PARAMETER_LOGGERS = ("aiosqlite",)


@dataclass(slots=True)
class RequestContext:
    """What every log record and audit record of a request names. Set by the edge middleware
    (a mutable holder, so the actor found by a dependency is seen by the access line too)."""

    request_id: str
    client: str | None
    actor_id: UUID | None = None


request_context: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)


def current_request_id() -> str | None:
    context = request_context.get()
    return context.request_id if context is not None else None


# C0 controls and DEL, C1 controls, the bidi embeddings, overrides, isolates and marks, the
# zero-width characters, and the Unicode line and paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` with every control, bidi and zero-width character written as an escape."""
    # The search alone on the usual, clean text: substitution only when there is something.
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


# Tuples, not unions: isinstance() takes a tuple faster, and this runs on every log line.
_AS_IS = (bool, int, float, UUID, datetime)
_SEQUENCES = (list, tuple, set, frozenset)


def _escaped(value: Any) -> Any:
    if value is None:
        return value
    if isinstance(value, str):
        return escape_controls(value)
    if isinstance(value, _AS_IS):
        return value
    if isinstance(value, dict):
        return {escape_controls(str(key)): _escaped(item) for key, item in value.items()}
    if isinstance(value, _SEQUENCES):
        return [_escaped(item) for item in value]
    return escape_controls(str(value))


# What every record has, and what the console formatter adds to it, so neither is an extra.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "request_id",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """The extras a call passed, in the order it passed them."""
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD_ATTRS}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": escape_controls(record.getMessage()),
            "request_id": current_request_id(),
        }
        for key, value in _extras(record).items():
            entry[key] = _escaped(value)
        if record.exc_info:
            entry["exception"] = escape_controls(self.formatException(record.exc_info))
        # pydantic's Rust encoder: a fraction of json.dumps' cost on every access line.
        return to_json(entry, fallback=str).decode()


class ConsoleFormatter(logging.Formatter):
    """`time level logger [request id] message key=value …` (the extras), escaped as a whole:
    a traceback too is folded onto its record's one line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        extras = _extras(record)
        record.request_id = current_request_id() or "-"
        line = super().format(record)
        for key, value in extras.items():
            if value is None:
                shown = "-"
            elif isinstance(value, str):
                shown = value
            else:
                shown = to_json(value, fallback=str).decode()
            line += f" {key}={shown}"
        return escape_controls(line)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    # Every record would otherwise look up the thread and process: fields neither format
    # prints, paid on every request's access line (the logging HOWTO's "Optimization" section
    # names these switches; its caller lookup has only a private one, so it stays on).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The audit trail is written whatever LOG_LEVEL says: quieting the log must not erase it.
    logging.getLogger(AUDIT_LOGGER).setLevel(logging.INFO)
    # aiosqlite's debug lines print each statement's parameters: password hashes, token digests.
    # No log level may write those.
    for printing_parameters in PARAMETER_LOGGERS:
        logging.getLogger(printing_parameters).setLevel(logging.INFO)
    # uvicorn's own access log would print query strings; ours prints the path only.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every webhook request's URL, whose path may be the receiver's secret; and
    # procrastinate writes a line per job step: warnings and errors only from both.
    for chatty in ("httpx", "httpcore", "procrastinate"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
