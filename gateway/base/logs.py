"""Structured logging: one line per event, carrying the request or connection id.

Code logs ``event=name key=value`` messages through the standard ``logging``
module. The id of the HTTP request or SMPP connection being served rides in a
context variable, so every line written while serving it carries it without
being passed around.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

context_id: contextvars.ContextVar[str] = contextvars.ContextVar("herald_context_id", default="-")


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.context_id = context_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """A JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "id": getattr(record, "context_id", "-"),
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """A readable line per event; tracebacks folded onto the same line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s id=%(context_id)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace("\n", " | ")


def configure(level: str = "info", fmt: str = "text") -> None:
    """Send Herald's logs to stderr, one line per event."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log repeats what the request middleware logs
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
