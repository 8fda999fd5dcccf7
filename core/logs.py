"""Structured JSON logs (structlog) that never carry a secret.

Logging is process-wide by nature; ``configure_logging`` is idempotent and called by
``create_app`` and the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SENSITIVE_KEYS = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|authorization|cookie|csrf|ciphertext)", re.I
)
# Values that look like our API keys or bearer credentials, wherever they appear.
SENSITIVE_VALUES = re.compile(r"(mn_[A-Za-z0-9_\-]{20,}|Bearer\s+[A-Za-z0-9._\-]+)")
REDACTED = "[redacted]"


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return SENSITIVE_VALUES.sub(REDACTED, value)
    if isinstance(value, dict):
        return {
            k: (REDACTED if SENSITIVE_KEYS.search(str(k)) else redact_value(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key != "event" and SENSITIVE_KEYS.search(key):
            event[key] = REDACTED
        else:
            event[key] = redact_value(event[key])
    return event


class CancelledTaskFilter(logging.Filter):
    """taskiq logs a task cancelled by a shutdown (the process stopping, ``serve`` giving up on a
    busy port) as "Exception found while executing function" with a traceback: not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries that use stdlib logging go through the same processors.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    receiver = logging.getLogger("taskiq.receiver.receiver")
    if not any(isinstance(f, CancelledTaskFilter) for f in receiver.filters):
        receiver.addFilter(CancelledTaskFilter())
