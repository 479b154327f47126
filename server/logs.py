"""Log lines that say which node, agent and engagement they concern, as JSON for log shippers or as
text for people.

A socket session binds who it serves once (`bind`); the ids then ride along on every line logged
from that connection's task, without each call site passing them. A line about one engagement
passes it explicitly: `log.info(..., extra={"engagement": eid})`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys

FIELDS = ("node", "agent", "supervisor", "engagement", "queue", "offer", "event", "actor")

_context: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "switchboard_log_context", default=()
)


def bind(**ids: str | None) -> None:
    """Attach ids to every line the current task (and tasks it starts) logs from now on."""
    merged = dict(_context.get())
    merged.update({k: v for k, v in ids.items() if v is not None})
    _context.set(tuple(merged.items()))


def _ids(record: logging.LogRecord, node: str) -> dict[str, str]:
    found = {"node": node} if node else {}
    found.update(_context.get())
    for name in FIELDS:
        value = record.__dict__.get(name)
        if value is not None:
            found[name] = str(value)
    return found


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (Unix seconds), level, logger, message, the ids, and the
    exception's traceback as one string when there is one."""

    def __init__(self, node: str = "") -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_ids(record, self.node))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The usual human line, with the ids appended as `key=value`."""

    def __init__(self, node: str = "") -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.node = node

    def formatMessage(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{k}={v}" for k, v in _ids(record, self.node).items())
        base = super().formatMessage(record)
        return f"{base} [{ids}]" if ids else base


def configure(level: str, fmt: str, node: str = "") -> None:
    """Route every logger (uvicorn's too) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(node) if fmt == "json" else TextFormatter(node))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # uvicorn is started with log_config=None
        logging.getLogger(name).handlers.clear()
