"""`fleettop export`: stored samples as CSV or JSON, streamed."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from fleettop.cli.history import export_rollups, parse_step
from fleettop.cli.output import SAMPLE_FIELDS, reader_may_leave, sample_record
from fleettop.cli.repository import open_repository
from fleettop.config import LoadedConfig
from fleettop.domain import Sample
from fleettop.errors import FleettopError, UnknownServer, UsageError
from fleettop.figures import parse_time

EXPORT_FIELDS = ["server", *SAMPLE_FIELDS]


EXPORT_FLUSH_ROWS = 500


class _CsvFormat:
    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.DictWriter(self._buffer, fieldnames=EXPORT_FIELDS, lineterminator="\n")

    def _take(self) -> str:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text

    def start(self) -> str:
        self._writer.writeheader()
        return self._take()

    def row(self, record: dict[str, Any]) -> str:
        record["disks"] = json.dumps(record["disks"], separators=(",", ":"))
        self._writer.writerow({k: "" if v is None else v for k, v in record.items()})
        return self._take()

    def end(self) -> str:
        return ""


class _JsonFormat:
    """A JSON array written one element at a time."""

    def __init__(self) -> None:
        self._first = True

    def start(self) -> str:
        return "["

    def row(self, record: dict[str, Any]) -> str:
        separator = "\n" if self._first else ",\n"
        self._first = False
        return separator + json.dumps(record)

    def end(self) -> str:
        return "]\n" if self._first else "\n]\n"


async def cmd_export(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    if args.step:
        return await export_rollups(args, loaded, parse_step(args.step) or 0)
    now = datetime.now(UTC)
    since = parse_time(args.since, "--since", now)
    until = parse_time(args.until, "--until", now)
    if since and until and since >= until:
        raise UsageError("--since must be before --until")
    output = Path(args.output).expanduser() if args.output else None
    if output and output.is_dir():
        raise UsageError(f"--output {output}: is a directory")
    async with open_repository(loaded) as repo:
        names = {server.id: server.name for server in await repo.list_servers()}
        if args.server and args.server not in names.values():
            raise UnknownServer(args.server)
        fmt = _CsvFormat() if args.format == "csv" else _JsonFormat()
        samples = repo.iter_samples(args.server, since, until, tag=args.tag)
        if output is None:
            return await _write_stdout(fmt, samples, names)
        return await _write_file(output, fmt, samples, names)


async def _write_stream(
    handle: TextIO, fmt: _CsvFormat | _JsonFormat, samples: AsyncIterator[Sample], names: dict[int, str]
) -> int:
    """Write the export in chunks, each handed to a thread so the event loop never waits on the disk or a pipe."""
    chunk = [fmt.start()]
    count = 0
    async for sample in samples:
        chunk.append(fmt.row({"server": names.get(sample.server_id, str(sample.server_id)), **sample_record(sample)}))
        count += 1
        if len(chunk) >= EXPORT_FLUSH_ROWS:
            await asyncio.to_thread(handle.write, "".join(chunk))
            chunk = []
    chunk.append(fmt.end())
    await asyncio.to_thread(handle.write, "".join(chunk))
    await asyncio.to_thread(handle.flush)
    return count


async def _write_stdout(fmt: _CsvFormat | _JsonFormat, samples: AsyncIterator[Sample], names: dict[int, str]) -> int:
    with reader_may_leave():
        await _write_stream(sys.stdout, fmt, samples, names)
    return 0


async def _write_file(
    output: Path, fmt: _CsvFormat | _JsonFormat, samples: AsyncIterator[Sample], names: dict[int, str]
) -> int:
    # Written aside and renamed at the end: a failed export never leaves a truncated file behind.
    # The draft is a new file of our own (O_EXCL, mode 0600, an unpredictable name): a link
    # planted beside the output, in a shared directory, is never followed.
    try:
        fd, name = await asyncio.to_thread(
            tempfile.mkstemp, dir=output.parent, prefix=f".{output.name}.", suffix=".partial"
        )
    except OSError as exc:
        raise FleettopError(f"--output {output}: {exc.strerror or exc}") from None
    partial = Path(name)
    handle = os.fdopen(fd, "w", encoding="utf-8", newline="")
    try:
        count = await _write_stream(handle, fmt, samples, names)
        await asyncio.to_thread(handle.close)
        await asyncio.to_thread(os.replace, partial, output)
    except BaseException:
        handle.close()
        partial.unlink(missing_ok=True)
        raise
    print(f"exported {count} samples to {output}", file=sys.stderr)
    return 0
