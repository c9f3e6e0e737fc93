"""`fleettop servers list|add|edit|remove`, `fleettop export`, `fleettop audit` and `fleettop db`."""

from __future__ import annotations

import argparse
import asyncio
import csv
import getpass
import io
import json
import os
import re
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from fleettop.config import LoadedConfig, expand_user, validate_server
from fleettop.domain import Sample, Server
from fleettop.errors import FleettopError, UnknownServer, UsageError
from fleettop.servers import INHERITED_MARK, THRESHOLDS, ServerAdmin, add_first_run_localhost, describe, fields_of, shown
from fleettop.store.db import Database, migrate, open_database, reporting_errors
from fleettop.store.repo import Repository
from fleettop.text import clean

EXPORT_FIELDS = [
    "server", "collected_at", "cpu_percent", "mem_percent", "swap_percent", "disk_percent", "disks",
    "load1", "load5", "load15", "procs", "uptime_s", "net_rx_bps", "net_tx_bps",
]
EXPORT_FLUSH_ROWS = 500
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_OPTIONS = ("host", "port", "username", "transport", "auth", "key_file", "interval", "enabled")


@asynccontextmanager
async def open_repository(loaded: LoadedConfig) -> AsyncIterator[Repository]:
    """The repository, with the config file's servers synced in (as at every start)."""
    database = await open_database(loaded.settings)
    try:
        async with reporting_errors(database):
            repo = Repository(database, loaded.settings.defaults)
            for note in await repo.sync_config_servers(loaded.settings.servers):
                print(f"fleettop: {note}", file=sys.stderr)
            await add_first_run_localhost(repo, loaded)
            yield repo
    finally:
        await database.close()


# -- servers ---------------------------------------------------------------------------


async def cmd_servers(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    async with open_repository(loaded) as repo:
        if args.action == "list":
            return await _list(args, repo)
        from fleettop.secrets import SecretBox  # cryptography: only for the commands that change servers

        admin = ServerAdmin(repo, loaded.settings, SecretBox(loaded.settings.data_dir), loaded.path)
        if args.action == "add":
            return await _add(args, loaded, admin)
        if args.action == "edit":
            return await _edit(args, loaded, admin)
        if args.action == "remove":
            return await _remove(args, loaded, admin)
    raise UsageError(f"unknown servers action {args.action!r}")


async def _list(args: argparse.Namespace, repo: Repository) -> int:
    servers = await repo.list_servers()
    if args.json:
        print(json.dumps([_server_json(s) for s in servers], indent=2))
        return 0
    if not servers:
        print("No servers yet: add one with `fleettop servers add NAME --host HOST`, or under servers: in the config file.")
        return 0
    header = ("NAME", "HOST", "PORT", "USER", "TRANSPORT", "AUTH", "INTERVAL", "CPU/RAM/DISK %", "ENABLED", "SOURCE")
    rows = [
        tuple(clean(cell) for cell in (  # a row written straight into the database is validated by nobody
            s.name, s.host, "-" if s.transport == "local" else str(s.port), s.username or "-", s.transport,
            "local" if s.transport == "local" else s.auth + (" (secret)" if s.has_secret else ""),
            shown(s, "interval"), "/".join(shown(s, key) for key in THRESHOLDS), shown(s, "enabled"), s.source,
        ))
        for s in servers
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if any(s.inherited for s in servers):
        print(f"{INHERITED_MARK} from defaults: in the config (set one with `fleettop servers edit NAME --interval N`, back with `default`)")
    return 0


async def _add(args: argparse.Namespace, loaded: LoadedConfig, admin: ServerAdmin) -> int:
    fields = {"name": args.name, **_given_options(args)}
    if args.password and "auth" not in fields:
        fields["auth"] = "password"
    cfg = validate_server(fields)
    if cfg.auth == "password" and not args.password:
        raise UsageError(f"server {cfg.name!r}: --auth password needs --password (asked for here, stored encrypted)")
    await admin.check_new(cfg.name)  # before asking for a password
    secret = await _ask_secret(cfg.name) if args.password else None
    server = await admin.add(cfg, secret)
    await _tell_running_workers(loaded)
    _print_change(args, server, f"added server {server.name!r} ({describe(server)})")
    return 0


async def _edit(args: argparse.Namespace, loaded: LoadedConfig, admin: ServerAdmin) -> int:
    server = await admin.get(args.name)
    given = _given_options(args)
    if args.rename:
        given["name"] = args.rename
    if not given and not args.password:
        raise UsageError("nothing to change: give at least one option (see `fleettop servers edit --help`)")
    cfg = None
    if given:
        admin.check_editable(server)  # before asking for a password
        fields = fields_of(server)
        fields["thresholds"].update(given.pop("thresholds", {}))
        fields.update(given)
        cfg = validate_server(fields)
    secret = await _ask_secret((cfg or server).name) if args.password else None
    updated, detail = await admin.edit(server.name, cfg, secret)
    await _tell_running_workers(loaded)
    _print_change(args, updated, f"edited server {updated.name!r}: {detail}")
    return 0


async def _remove(args: argparse.Namespace, loaded: LoadedConfig, admin: ServerAdmin) -> int:
    server, samples = await admin.check_removable(args.name)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"not removing server {server.name!r}: no terminal to confirm on (add --yes)")
        answer = await _prompt(f"Remove server {server.name!r} and its {samples} samples? [y/N] ")
        if answer.strip().lower() not in {"y", "yes"}:
            print(f"Server {server.name!r} kept.")
            return 1
    await admin.remove(server, samples)
    await _tell_running_workers(loaded)
    print(f"removed server {server.name!r} and its {samples} samples")
    return 0


async def _tell_running_workers(loaded: LoadedConfig) -> None:
    """A change takes effect at once in workers and dashboards already running."""
    from fleettop.cache import announce_servers_changed  # Redis only for the commands that change servers

    await announce_servers_changed(loaded.settings)


def _given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options given, as ServerConfig fields; `default` (for the interval and thresholds)
    is None: the server then follows `defaults:`."""
    fields = {key: _unless_default(getattr(args, key)) for key in _OPTIONS if getattr(args, key, None) is not None}
    thresholds = {key: _unless_default(getattr(args, key)) for key in THRESHOLDS if getattr(args, key, None) is not None}
    if thresholds:
        fields["thresholds"] = thresholds
    if args.key_file is not None:
        _check_key_file(args.key_file)
    return fields


def _unless_default(value: Any) -> Any:
    return None if value == "default" else value


def _check_key_file(key_file: str) -> None:
    """A key file given on the command line must be there now (a typo would only show as an
    authentication failure at the next collection); what kind of file it is, ServerAdmin
    checks (servers.check_key_file)."""
    try:
        path = expand_user(Path(key_file))
    except ValueError as exc:
        raise UsageError(f"--key-file {clean(key_file)}: {exc}") from None
    if not path.exists():
        raise UsageError(f"--key-file {clean(key_file)}: no such file")


async def _ask_secret(name: str) -> str:
    if sys.stdin.isatty():
        plain = await asyncio.to_thread(getpass.getpass, f"Password or key passphrase for {name}: ")
    else:  # scripts pipe it in: `printf '%s\n' "$PW" | fleettop servers edit web1 --password`
        plain = (await asyncio.to_thread(sys.stdin.readline)).rstrip("\r\n")
    if not plain:
        raise UsageError("empty password: nothing stored")
    return plain


async def _prompt(question: str) -> str:
    try:
        return await asyncio.to_thread(input, question)
    except EOFError:
        return ""


def _server_json(server: Server) -> dict[str, Any]:
    return server.model_dump(mode="json")


def _print_change(args: argparse.Namespace, server: Server, message: str) -> None:
    print(json.dumps(_server_json(server), indent=2) if args.json else message)


# -- export ----------------------------------------------------------------------------


def parse_time(text: str | None, option: str, now: datetime | None = None) -> datetime | None:
    """'30m', '24h', '7d', '2w' (that long ago) or an ISO-8601 time (UTC unless it says otherwise)."""
    if text is None:
        return None
    now = now or datetime.now(UTC)
    match = _DURATION.match(text)
    if match:
        return now - timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{option} {text!r}: give a duration such as 30m, 24h, 7d or an ISO-8601 time") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def export_record(server_name: str, sample: Sample) -> dict[str, Any]:
    """One exported sample, with the field names of `collect --json`."""
    return {
        "server": server_name,
        "collected_at": sample.collected_at.isoformat(),
        "cpu_percent": sample.cpu_percent,
        "mem_percent": sample.mem_percent,
        "swap_percent": sample.swap_percent,
        "disk_percent": sample.disk_percent,
        "disks": [
            {"mount": d.mount, "percent": d.percent, "used_bytes": d.used_bytes, "total_bytes": d.total_bytes}
            for d in sample.disks
        ],
        "load1": sample.load1,
        "load5": sample.load5,
        "load15": sample.load15,
        "procs": sample.procs,
        "uptime_s": sample.uptime_s,
        "net_rx_bps": sample.net_rx_bps,
        "net_tx_bps": sample.net_tx_bps,
    }


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
        samples = repo.iter_samples(args.server, since, until)
        if output is None:
            return await _write_stdout(fmt, samples, names)
        return await _write_file(output, fmt, samples, names)


async def _write_stream(handle: TextIO, fmt: _CsvFormat | _JsonFormat, samples: AsyncIterator[Sample], names: dict[int, str]) -> int:
    """Write the export in chunks, each handed to a thread so the event loop never waits on the disk or a pipe."""
    chunk = [fmt.start()]
    count = 0
    async for sample in samples:
        chunk.append(fmt.row(export_record(names.get(sample.server_id, str(sample.server_id)), sample)))
        count += 1
        if len(chunk) >= EXPORT_FLUSH_ROWS:
            await asyncio.to_thread(handle.write, "".join(chunk))
            chunk = []
    chunk.append(fmt.end())
    await asyncio.to_thread(handle.write, "".join(chunk))
    await asyncio.to_thread(handle.flush)
    return count


async def _write_stdout(fmt: _CsvFormat | _JsonFormat, samples: AsyncIterator[Sample], names: dict[int, str]) -> int:
    try:
        await _write_stream(sys.stdout, fmt, samples, names)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python's exit flush quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


async def _write_file(output: Path, fmt: _CsvFormat | _JsonFormat, samples: AsyncIterator[Sample], names: dict[int, str]) -> int:
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


# -- audit ---------------------------------------------------------------------------


async def cmd_audit(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    """The newest entries, printed oldest first as a log reads; each field one clean line
    (a target or detail holds names and text that users typed)."""
    async with open_repository(loaded) as repo:
        entries = list(reversed(await repo.audit_entries(args.limit)))
    if args.json:
        print(json.dumps([entry.model_dump(mode="json", exclude={"id"}) for entry in entries], indent=2))
        return 0
    if not entries:
        print("no audit entries")
        return 0
    rows = [(entry.at.strftime("%Y-%m-%dT%H:%M:%SZ"), clean(entry.actor), clean(entry.action), clean(entry.target), clean(entry.detail))
            for entry in entries]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        print("  ".join([*(field.ljust(width) for field, width in zip(row, widths)), row[4]]).rstrip())
    return 0


# -- db --------------------------------------------------------------------------------


async def cmd_db(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    if args.action not in {"upgrade", "purge"}:
        raise UsageError(f"unknown db action {args.action!r}")
    database = await open_database(loaded.settings, migrate_to_head=args.action == "purge")
    try:
        async with reporting_errors(database):
            if args.action == "upgrade":
                await _upgrade(database, Repository(database))
            else:
                await _purge(loaded, Repository(database))
    finally:
        await database.close()
    return 0


async def _upgrade(database: Database, repo: Repository) -> None:
    before = await database.revision()
    await migrate(database)
    after = await database.revision()
    if before == after:
        print(f"database {database.url} is up to date (revision {after})")
        return
    await repo.audit("db.upgrade", database.url, f"revision {before or 'none'} -> {after}")
    print(f"database {database.url} upgraded from revision {before or 'none'} to {after}")


async def _purge(loaded: LoadedConfig, repo: Repository) -> None:
    days = loaded.settings.retention.days
    cutoff = datetime.now(UTC) - timedelta(days=days)
    purged = await repo.purge_samples(cutoff)
    await repo.audit("db.purge", "samples", f"{purged} samples older than {days} days")
    print(f"purged {purged} samples older than {days} days ({cutoff:%Y-%m-%d %H:%M} UTC)")
