"""Log lines for the worker: logfmt, one line per record, never a traceback.

`at=2026-11-29T00:41:02.113Z level=info logger=fleettop.jobs msg="collected web1 in 0.08s"`;
an exception becomes `error="ExcType: first line"`. SAQ reports every failed
attempt with logger.exception and its upkeep loops report a lost Redis each
second: the formatter flattens them and the filter drops repeats for a while.
"""

from __future__ import annotations

import atexit
import copy
import logging
import logging.handlers
import os
import queue
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from fleettop.private import open_own_file, private_dir
from fleettop.queue.contract import AttemptFailed
from fleettop.text import typed_line

REPEAT_WINDOW_S = 30.0


def _quote(value: object) -> str:
    text = " ".join(str(value).split())
    if text and all(c.isalnum() or c in "-_./:@+," for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        at = (
            datetime.fromtimestamp(record.created, timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        fields = [
            f"at={at}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            fields.append("error=" + _quote(typed_line(exc)))
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


class _Handoff(logging.handlers.QueueHandler):
    """Hands records to the writer thread as they are: QueueHandler would fold the
    traceback into the message, which the formatter keeps to one line instead."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        record.msg, record.args = record.getMessage(), None
        return record


def configure(stream: TextIO, level: int = logging.INFO) -> None:
    """Send fleettop's and SAQ's records to `stream` as logfmt lines, written by a
    thread so that a slow terminal or pipe never stalls the event loop."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogfmtFormatter())
    handler.addFilter(AttemptFailedFilter())
    handler.addFilter(RepeatFilter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, handler)
    listener.start()
    atexit.register(listener.stop)  # flushes what is left
    root = logging.getLogger()
    root.handlers[:] = [_Handoff(records)]
    root.setLevel(level)
    # SAQ narrates every enqueue and job at INFO; fleettop logs what matters itself.
    logging.getLogger("saq").setLevel(logging.WARNING)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)


def configure_file_if_unset(path: Path) -> None:
    """Where no front end chose a destination (the dashboard), log to a file in
    data_dir: Python's fallback, stderr, would tear a full-screen UI."""
    if logging.getLogger().handlers:
        return
    private_dir(path.parent)  # data_dir
    # Host names and errors: the owner's file, never a link's target.
    fd = open_own_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    configure(os.fdopen(fd, "a", encoding="utf-8"))
