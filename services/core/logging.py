"""Logging for every Loom process: one handler on the root logger, JSON lines (or plain text for
development), each record carrying the current request id.

``configure_logging(settings)`` is idempotent and quietens what would log what Loom must not, or twice
(uvicorn's access log, Alembic's per-probe lines, httpx's URLs). No personal data and no secrets in logs:
docs/security.md, "Logs: no personal data, no secrets".
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import IO, Any

from asgi_correlation_id import correlation_id
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from services.core.config import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s"

# Loggers whose handlers are removed so their records reach the root handler once.
_PROPAGATING = ("uvicorn", "uvicorn.error", "arq", "arq.worker", "arq.jobs")
# Loggers that would duplicate the API's access line or log URLs with their query strings.
_SILENCED = ("uvicorn.access",)
# Record attributes that are not fields of a JSON line: uvicorn's ``color_message`` repeats the message with
# ANSI colour codes for terminals.
_NOT_FIELDS = (*RESERVED_ATTRS, "color_message")
# pgserver logs every pg_ctl command line it runs at INFO.
_QUIETENED = {"httpx": logging.WARNING, "httpcore": logging.WARNING, "pgserver": logging.WARNING}


class RequestIdFilter(logging.Filter):
    """Puts the current request id (``X-Request-ID``, set by the API's middleware) on every record as
    ``request_id`` (None outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = correlation_id.get()
        return True


class _AlembicChatterFilter(logging.Filter):
    """Drops the two lines Alembic logs whenever a migration context is made (the readiness check makes
    one per probe); its lines about applied migrations stay."""

    _CHATTER = ("Context impl ", "Will assume ")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name == "alembic.runtime.migration"
            and isinstance(record.msg, str)
            and record.msg.startswith(self._CHATTER)
        )


class _DuplicateTracebackFilter(logging.Filter):
    """Drops uvicorn's "Exception in ASGI application": the API's own 500 handler has already logged the
    error, with the request id and without the exception's message (which may quote personal data)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "uvicorn.error" and record.msg == "Exception in ASGI application\n")


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is when a record is emitted (so a replaced or captured stdout
    never leaves the handler writing to a closed stream)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> IO[str]:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class _TextFormatter(logging.Formatter):
    """Plain lines, plus a record's scrubbed ``traceback`` when it carries one."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        scrubbed = getattr(record, "traceback", None)
        return f"{text}\n{scrubbed}" if scrubbed else text


def build_formatter(json: bool) -> logging.Formatter:
    if json:
        return JsonFormatter(
            JSON_FIELDS,
            rename_fields={"levelname": "level", "name": "logger"},
            reserved_attrs=_NOT_FIELDS,
            timestamp="time",  # ISO 8601, UTC
        )
    return _TextFormatter(TEXT_FORMAT)


def configure_logging(settings: Settings, *, stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record to ``stream`` (stdout by default) as JSON lines when ``settings.log_json``,
    at ``settings.log_level``. Returns the installed handler."""
    handler: logging.Handler = _StdoutHandler() if stream is None else logging.StreamHandler(stream)
    handler.set_name("loom")
    handler.addFilter(RequestIdFilter())
    handler.addFilter(_AlembicChatterFilter())
    handler.addFilter(_DuplicateTracebackFilter())
    handler.setFormatter(build_formatter(settings.log_json))

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "loom"]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())

    for name in _PROPAGATING:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    for name in _SILENCED:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = False
        logger.disabled = True
    for name, level in _QUIETENED.items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(True)
    return handler


def scrubbed_traceback(exc: BaseException) -> str:
    """Where an exception came from — its class and the stack, for every exception in its chain — without
    its message: messages of database errors quote SQL parameters and row values (personal data)."""
    lines: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        sqlstate = getattr(current, "sqlstate", None)
        kind = f"{type(current).__module__}.{type(current).__qualname__}"
        lines.append(kind + (f" [SQLSTATE {sqlstate}]" if isinstance(sqlstate, str) else ""))
        lines.extend(
            f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}'
            for frame in traceback.extract_tb(current.__traceback__)
        )
        current = current.__cause__ or current.__context__
    return "\n".join(lines)
