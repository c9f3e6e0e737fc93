"""`fleettop trust NAME`, `fleettop untrust NAME` and `fleettop servers test NAME`."""

from __future__ import annotations

import argparse
import contextlib
import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from fleettop.config import LoadedConfig, ServerConfig, Settings
from fleettop.domain import Metrics, Server
from fleettop.errors import UnknownServer, UsageError
from fleettop.figures import duration, size
from fleettop.probe import CollectError, Prober, describe_key, host_pattern, host_port
from fleettop.probe import forget_known_host, other_keys_in, record_known_host
from fleettop.store.db import open_database
from fleettop.store.repo import Repository
from fleettop.text import clean

if TYPE_CHECKING:
    import asyncssh


@contextlib.asynccontextmanager
async def _remote_server(loaded: LoadedConfig, name: str) -> AsyncIterator[tuple[Repository, Server]]:
    """The repository and the named server, for a command about its host key (a local
    server has none); the database is closed after."""
    database = await open_database(loaded.settings)
    try:
        repository = Repository(database)
        server, _ = await _find_server(loaded, repository, name)
        if server.transport == "local":
            raise UsageError(f"{server.name} uses the local transport: it has no host key")
        yield repository, server
    finally:
        await database.close()


async def cmd_trust(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    """Show the host key a server presents and, once confirmed, record it in data_dir/known_hosts."""
    settings = loaded.settings
    async with _remote_server(loaded, args.name) as (repository, server):
        prober = Prober(settings)
        try:
            fingerprint, key = await prober.host_key(server)
            state = await prober.trusted_state(server, key)
        finally:
            await prober.close()
        print(clean(f"{server.name} ({host_port(server.host, server.port)}) presents the host key {describe_key(key)}"))
        if state == "trusted":
            print("This key is already trusted.")
            return 0
        if state == "changed":
            print(
                "WARNING: a DIFFERENT key is trusted for this host. Unless you know why it changed "
                "(reinstalled, new host keys), someone may be intercepting the connection."
            )
        # --yes accepts a new key only (as ssh's accept-new): a changed key, the one case a man
        # in the middle shows, takes a person's answer or an explicit --replace.
        if state == "changed" and not args.replace and (args.yes or not sys.stdin.isatty()):
            raise UsageError(
                f"not trusted: the host key of {server.name} CHANGED and --yes accepts only a new key; "
                f"check the fingerprint, then run: fleettop trust {server.name} --replace"
            )
        question = "Replace the trusted key with this one? [y/N] " if state == "changed" else "Trust this key? [y/N] "
        if not (args.replace or (args.yes and state == "unknown")) and not await _confirm(question):
            print("Not trusted.", file=sys.stderr)
            return 1
        path = prober.own_known_hosts
        replaced = await asyncio.to_thread(record_known_host, path, server.host, server.port, key)
        await repository.audit("trust", server.name, fingerprint + (f", {replaced} earlier key(s) removed" if replaced else ""))
        print(f"Trusted: recorded in {path}" + (f", in place of {replaced} earlier key(s)" if replaced else ""))
        await _warn_user_known_hosts(settings, server, key)
        return 0


async def cmd_untrust(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    """Take a server's keys out of data_dir/known_hosts: its next connection is refused until
    `fleettop trust` records a key again."""
    settings = loaded.settings
    async with _remote_server(loaded, args.name) as (repository, server):
        prober = Prober(settings)
        path = prober.own_known_hosts
        removed = await asyncio.to_thread(forget_known_host, path, server.host, server.port)
        where = clean(host_pattern(server.host, server.port))  # the database's, validated by nobody
        if removed:
            await repository.audit("untrust", server.name, f"{removed} key(s) for {where} removed")
            print(f"Untrusted: {removed} key(s) for {where} removed from {path}")
        else:
            print(f"No key for {where} in {path}.")
        await _warn_user_known_hosts(settings, server, None)
        return 0


async def _warn_user_known_hosts(settings: Settings, server: Server, key: asyncssh.SSHKey | None) -> None:
    """fleettop also trusts every key in ssh.known_hosts, which it never writes: say so when
    that file still holds another key for this host."""
    known_hosts = settings.ssh.known_hosts
    others = await asyncio.to_thread(other_keys_in, known_hosts, server.host, server.port, key)
    if others:
        where = clean(host_pattern(server.host, server.port))
        print(
            f"WARNING: {known_hosts} still trusts {others} other key(s) for {where}, and fleettop accepts them too "
            f"(fleettop never writes that file): remove them with ssh-keygen -R '{where}' -f {known_hosts}",
            file=sys.stderr,
        )


async def cmd_servers_test(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    """Connect, run the probe once and print the figures or the error; stores nothing."""
    settings = loaded.settings
    database = await open_database(settings)
    try:
        server, secret = await _find_server(loaded, Repository(database), args.name)
    finally:
        await database.close()
    prober = Prober(settings)
    started = time.perf_counter()
    try:
        result = await prober.collect(server, None, secret, keep=False)
    except CollectError as exc:
        if args.json:
            print(json.dumps({"server": server.name, "status": "failed", "kind": exc.kind, "error": str(exc)}))
            return 1
        raise
    finally:
        await prober.close()
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps({"server": server.name, "status": "ok", "error": None, **result.metrics.model_dump(mode="json")}))
    else:
        print(clean(f"{server.name} ({_where(server)}): ok in {elapsed:.2f} s"))
        print(format_metrics(result.metrics))
    return 0


async def _find_server(loaded: LoadedConfig, repository: Repository, name: str) -> tuple[Server, bytes | None]:
    """The server and its encrypted secret; a server in the config file counts even before it is synced."""
    for cfg in loaded.settings.servers:
        if cfg.name == name:
            stored = await repository.get_server(name)
            secret = await repository.get_secret(stored.id) if stored else None
            return _from_config(cfg, stored.id if stored else 0), secret
    server = await repository.get_server(name)
    if server is None:
        raise UnknownServer(name)
    return server, await repository.get_secret(server.id) if server.has_secret else None


def _from_config(cfg: ServerConfig, server_id: int) -> Server:
    """The config entry as a server, under the id its stored secret (if any) is bound to."""
    fields = cfg.model_dump(exclude={"thresholds", "interval"})
    fields["key_file"] = str(cfg.key_file) if cfg.key_file else None
    return Server(id=server_id, source="config", **fields)


def _where(server: Server) -> str:
    return "local" if server.transport == "local" else host_port(server.host, server.port)


async def _confirm(prompt: str) -> bool:
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


def format_metrics(metrics: Metrics) -> str:
    """The figures of one sample as aligned lines, for a terminal."""

    def percent(value: float | None) -> str:
        return "   n/a" if value is None else f"{value:5.1f} %"

    lines = [
        f"  cpu      {percent(metrics.cpu_percent)}",
        f"  memory   {percent(metrics.mem_percent)}  {size(metrics.mem_used_bytes)} of {size(metrics.mem_total_bytes)}",
        f"  swap     {percent(metrics.swap_percent)}  "
        + (f"{size(metrics.swap_used_bytes)} of {size(metrics.swap_total_bytes)}" if metrics.swap_total_bytes else "none"),
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
