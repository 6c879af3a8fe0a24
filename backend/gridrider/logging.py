"""Structured logs: dotted event names with key=value context (or JSON lines for collectors).

    log = get_logger(__name__)
    log.info("jobs.dead", job_id=12, kind="process_report")
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import Any

import msgspec

_CONTEXT_ATTR = "gridrider_context"


class EventLogger:
    """A thin wrapper so every call site names an event and passes context as keywords."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, event: str, ctx: dict[str, Any], exc_info: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra={_CONTEXT_ATTR: ctx}, exc_info=exc_info, stacklevel=3)

    def debug(self, event: str, **ctx: Any) -> None:
        self._log(logging.DEBUG, event, ctx)

    def info(self, event: str, **ctx: Any) -> None:
        self._log(logging.INFO, event, ctx)

    def warning(self, event: str, **ctx: Any) -> None:
        self._log(logging.WARNING, event, ctx)

    def error(self, event: str, **ctx: Any) -> None:
        self._log(logging.ERROR, event, ctx)

    def exception(self, event: str, **ctx: Any) -> None:
        self._log(logging.ERROR, event, ctx, exc_info=True)


def get_logger(name: str) -> EventLogger:
    return EventLogger(name)


def _fmt_value(value: Any) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or "=" in text or not text) else text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ctx = getattr(record, _CONTEXT_ATTR, {})
        when = dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        pairs = " ".join(f"{k}={_fmt_value(v)}" for k, v in ctx.items())
        line = f"{when} {record.levelname.lower():7} {record.getMessage()} {pairs}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "at": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "logger": record.name,
            **getattr(record, _CONTEXT_ATTR, {}),
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(body, enc_hook=str).decode()


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter that is not ours to act on.
    for noisy in ("pgserver", "arq.worker", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
