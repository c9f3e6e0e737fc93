"""What every command prints and asks: one-line errors, sample records, confirmations."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

from fleettop.config import LoadedConfig
from fleettop.domain import Sample
from fleettop.errors import FleettopError, UsageError
from fleettop.text import first_line


def one_line_errors(
    handler: Callable[[argparse.Namespace, LoadedConfig], Awaitable[int]],
) -> Callable[[argparse.Namespace, LoadedConfig], Coroutine[Any, Any, int]]:
    """Redis or the database failing in the middle of a command (gone while `collect
    --wait` waits): one line naming which, never a traceback."""

    @functools.wraps(handler)
    async def run(args: argparse.Namespace, loaded: LoadedConfig) -> int:
        try:
            return await handler(args, loaded)
        except OSError as exc:
            raise FleettopError(first_line(exc)) from None
        except Exception as exc:
            # Looked up, not imported: a library the command never loaded raised nothing.
            redis = sys.modules.get("redis.exceptions")
            if redis is not None and isinstance(exc, redis.RedisError):
                raise FleettopError(f"redis: {first_line(exc)}") from None
            sqlalchemy = sys.modules.get("sqlalchemy.exc")
            if sqlalchemy is None or not isinstance(exc, sqlalchemy.SQLAlchemyError):
                raise
            from fleettop.store.db import describe_error

            raise FleettopError(f"database: {describe_error(exc)}") from None

    return run


# The fields of one sample in `collect --json` and `export` (after "server"), in this order.
SAMPLE_FIELDS = (
    "collected_at",
    "cpu_percent",
    "mem_percent",
    "swap_percent",
    "disk_percent",
    "disks",
    "load1",
    "load5",
    "load15",
    "procs",
    "uptime_s",
    "net_rx_bps",
    "net_tx_bps",
)


def sample_record(sample: Sample | None) -> dict[str, Any]:
    """One sample's SAMPLE_FIELDS as JSON values; all None when there is no sample."""
    if sample is None:
        return dict.fromkeys(SAMPLE_FIELDS)
    record: dict[str, Any] = {field: getattr(sample, field) for field in SAMPLE_FIELDS}
    record["collected_at"] = sample.collected_at.isoformat()
    record["disks"] = [
        {"mount": d.mount, "percent": d.percent, "used_bytes": d.used_bytes, "total_bytes": d.total_bytes}
        for d in sample.disks
    ]
    return record


async def confirm(prompt: str) -> bool:
    """Asked on the terminal itself (/dev/tty), as ssh asks: the question shows whatever
    stdout or stderr are redirected to (`2>/dev/null`). The answer is awaited on the event
    loop, not in a thread, so Ctrl-C ends the command at once."""
    if not sys.stdin.isatty():
        raise UsageError("confirmation needed but stdin is not a terminal: pass --yes")
    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        raise UsageError("confirmation needed but there is no terminal: pass --yes") from None
    loop = asyncio.get_running_loop()
    try:
        os.write(tty, prompt.encode())
        readable = loop.create_future()
        loop.add_reader(tty, lambda: None if readable.done() else readable.set_result(None))
        try:
            await readable
        finally:
            loop.remove_reader(tty)
        answer = os.read(tty, 1024).decode(errors="replace")  # a whole line: the terminal is in line mode
    finally:
        os.close(tty)
    return answer.strip().lower() in {"y", "yes"}


@contextlib.contextmanager
def reader_may_leave() -> Iterator[None]:
    """Writing to stdout, whose reader may go away (`| head`): stop quietly, and keep Python's
    flush at exit quiet too."""
    try:
        yield
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
