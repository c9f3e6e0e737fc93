"""`fleettop servers list|add|edit|remove|test`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import time
from pathlib import Path
from typing import Any

from fleettop.cli.repository import find_server, open_repository
from fleettop.config import LoadedConfig, expand_user, validate_server
from fleettop.domain import Metrics, Server
from fleettop.errors import UsageError
from fleettop.figures import duration, size
from fleettop.servers import INHERITED_MARK, THRESHOLDS, ServerAdmin, describe, fields_of, shown
from fleettop.store.db import open_database
from fleettop.store.repo import Repository
from fleettop.text import clean
from fleettop.views import ResolvedRoute, route_text

_OPTIONS = ("host", "port", "username", "transport", "auth", "key_file", "interval", "enabled", "tags", "jump")


async def cmd_servers(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    if args.action == "test":
        return await _test(args, loaded)
    async with open_repository(loaded) as repo:
        if args.action == "list":
            return await _list(args, repo)
        if args.action == "import":
            from fleettop.cli.server_import import cmd_import

            return await cmd_import(args, loaded, repo, _tell_running_workers)
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
    servers = await repo.list_servers(tag=args.tag)
    if args.json:
        print(json.dumps([_server_json(s) for s in servers], indent=2))
        return 0
    if not servers and args.tag:
        print(f"No server carries the tag {clean(args.tag)!r}.")
        return 0
    if not servers:
        print(
            "No servers yet: add one with `fleettop servers add NAME --host HOST`, or under servers: in the config file."
        )
        return 0
    header = (
        "NAME",
        "HOST",
        "PORT",
        "USER",
        "TRANSPORT",
        "AUTH",
        "INTERVAL",
        "CPU/RAM/DISK %",
        "ENABLED",
        "TAGS",
        "SOURCE",
    )
    rows = [
        tuple(
            clean(cell)
            for cell in (  # a row written straight into the database is validated by nobody
                s.name,
                s.host,
                "-" if s.transport == "local" else str(s.port),
                s.username or "-",
                s.transport,
                "local" if s.transport == "local" else s.auth + (" (secret)" if s.has_secret else ""),
                shown(s, "interval"),
                "/".join(shown(s, key) for key in THRESHOLDS),
                shown(s, "enabled"),
                shown(s, "tags"),
                s.source,
            )
        )
        for s in servers
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if any(s.inherited for s in servers):
        print(
            f"{INHERITED_MARK} from {'groups: or ' if any(s.tags for s in servers) else ''}defaults: in the config (set one with `fleettop servers edit NAME --interval N`, back with `default`)"
        )
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
    thresholds = {
        key: _unless_default(getattr(args, key)) for key in THRESHOLDS if getattr(args, key, None) is not None
    }
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


async def _test(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    """Say what the server resolves to, connect, run the probe once and print the figures or
    the error; stores nothing."""
    settings = loaded.settings
    database = await open_database(settings)
    try:
        repo = Repository(database, settings.defaults, settings.retention, groups=settings.groups)
        server, secret = await find_server(loaded, repo, args.name)
        from fleettop.probe import CollectError, Prober  # SSH and cryptography: only for `servers test`

        prober = Prober(settings, find_server=repo.get_server)
        resolved: dict[str, Any] | None = None
        started = time.perf_counter()
        try:
            if server.transport != "local":
                resolved = await prober.resolved(server)
                if not args.json:
                    print(_resolved_text(server, resolved))
            started = time.perf_counter()
            result = await prober.collect(server, None, secret, keep=False)
        except CollectError as exc:
            if args.json:
                print(
                    json.dumps(
                        {
                            "server": server.name,
                            "status": "failed",
                            "kind": exc.kind,
                            "error": str(exc),
                            "resolved": resolved,
                        }
                    )
                )
                return 1
            raise
        finally:
            await prober.close()
    finally:
        await database.close()
    elapsed = time.perf_counter() - started
    if args.json:
        print(
            json.dumps(
                {
                    "server": server.name,
                    "status": "ok",
                    "error": None,
                    "resolved": resolved,
                    **result.metrics.model_dump(mode="json"),
                }
            )
        )
    else:
        print(clean(f"{server.name} ({_where(server)}): ok in {elapsed:.2f} s"))
        print(format_metrics(result.metrics))
    return 0


def _resolved_text(server: Server, resolved: dict[str, Any]) -> str:
    """What a server resolves to, as `servers test` prints it before connecting."""
    route = ResolvedRoute.model_validate(resolved)
    return clean(
        f"{server.name}: {route_text(route)}, auth {route.auth}, jump {' -> '.join(route.jump) or 'none (direct)'}"
    )


def _where(server: Server) -> str:
    from fleettop.probe.errors import host_port  # the probe package loads cryptography: not for list

    return "local" if server.transport == "local" else host_port(server.host, server.port)


def format_metrics(metrics: Metrics) -> str:
    """The figures of one sample as aligned lines, for a terminal."""

    def percent(value: float | None) -> str:
        return "   n/a" if value is None else f"{value:5.1f} %"

    lines = [
        f"  cpu      {percent(metrics.cpu_percent)}",
        f"  memory   {percent(metrics.mem_percent)}  {size(metrics.mem_used_bytes)} of {size(metrics.mem_total_bytes)}",
        f"  swap     {percent(metrics.swap_percent)}  "
        + (
            f"{size(metrics.swap_used_bytes)} of {size(metrics.swap_total_bytes)}"
            if metrics.swap_total_bytes
            else "none"
        ),
        f"  disk     {percent(metrics.disk_percent)}  (the fullest mount)",
    ]
    # Every name here came from the host: cleaned again, whatever the parser let through.
    mounts = [clean(disk.mount) for disk in metrics.disks]
    width = max((len(mount) for mount in mounts), default=0)
    for mount, disk in zip(mounts, metrics.disks):
        avail = "" if disk.avail_bytes is None else f", {size(disk.avail_bytes)} free"
        lines.append(
            f"    {mount:<{width}}  {disk.percent:5.1f} %  {size(disk.used_bytes)} of {size(disk.total_bytes)}{avail}  {clean(disk.device)} {clean(disk.fstype)}"
        )
    lines += [
        f"  load     {metrics.load1:.2f} {metrics.load5:.2f} {metrics.load15:.2f}",
        f"  procs    {metrics.procs}",
        f"  uptime   {duration(metrics.uptime_s)}",
    ]
    if metrics.net_rx_bps is not None and metrics.net_tx_bps is not None:
        lines.append(f"  network  in {size(metrics.net_rx_bps)}/s  out {size(metrics.net_tx_bps)}/s")
    return "\n".join(lines)
