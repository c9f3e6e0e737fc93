"""Log lines for the worker: logfmt, one line per record, never a traceback.

`at=2026-11-29T00:41:02.113Z level=info logger=fleettop.jobs msg="collected web1 in 0.08s"`;
an exception becomes `error="ExcType: first line"`. SAQ reports every failed
attempt with logger.exception and its upkeep loops report a lost Redis each
second: the formatter flattens them and the filter drops repeats for a while.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import TextIO

from app.queue.jobs import AttemptFailed

REPEAT_WINDOW_S = 30.0


def _quote(value: object) -> str:
    text = " ".join(str(value).split())
    if text and all(c.isalnum() or c in "-_./:@+," for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        fields = [f"at={at}", f"level={record.levelname.lower()}", f"logger={record.name}", f"msg={_quote(record.getMessage())}"]
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            lines = str(exc).strip().splitlines()
            fields.append("error=" + _quote(f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__))
        return " ".join(fields)


class RepeatFilter(logging.Filter):
    """Drops a record identical to one passed in the last REPEAT_WINDOW_S seconds."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.getMessage() if record.levelno >= logging.WARNING else str(id(record)))
        now = time.monotonic()
        if now - self._seen.get(key, -REPEAT_WINDOW_S) < REPEAT_WINDOW_S:
            return False
        if record.levelno >= logging.WARNING:
            self._seen[key] = now
            if len(self._seen) > 1000:
                self._seen.clear()
        return True


class AttemptFailedFilter(logging.Filter):
    """SAQ logs each failed attempt with its whole job; the job has logged it in one line already."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], AttemptFailed))


def configure(stream: TextIO, level: int = logging.INFO) -> None:
    """Send fleettop's and SAQ's records to `stream` as logfmt lines."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogfmtFormatter())
    handler.addFilter(AttemptFailedFilter())
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # SAQ narrates every enqueue and job at INFO; fleettop logs what matters itself.
    logging.getLogger("saq").setLevel(logging.WARNING)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
