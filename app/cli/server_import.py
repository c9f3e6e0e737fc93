"""`fleettop servers import ssh-config|ansible`: servers listed by another tool, added or updated.

Idempotent: a second run finds every server as the first left it and says so. Each server is
one line (added, updated, unchanged, skipped and why), each change audited as `servers add`
and `servers edit` are. Nothing in the files is run (fleettop.inventory reads them).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fleettop.config import DEFAULT_SSH_CONFIG, ConfigError, LoadedConfig, ServerConfig, expand_user, validate_server
from fleettop.errors import UsageError
from fleettop.inventory import ImportedHost, ImportResult, InventoryError, ansible_hosts, matches, ssh_config_hosts
from fleettop.servers import ServerAdmin, describe, fields_of
from fleettop.store.repo import Repository
from fleettop.text import clean


async def cmd_import(
    args: argparse.Namespace,
    loaded: LoadedConfig,
    repo: Repository,
    tell_running_workers: Callable[[LoadedConfig], Awaitable[None]],
) -> int:
    from fleettop.secrets import SecretBox  # cryptography: only for the commands that change servers

    path = _source_path(args, loaded)
    try:
        found = await asyncio.to_thread(ssh_config_hosts if args.source == "ssh-config" else ansible_hosts, path)
    except InventoryError as exc:
        raise UsageError(clean(str(exc))) from None
    admin = ServerAdmin(repo, loaded.settings, SecretBox(loaded.settings.data_dir), loaded.path)
    origin = f"imported from {path}"
    counts = {"added": 0, "updated": 0, "unchanged": 0, "skipped": 0}
    for note in found.notes:
        print(clean(f"note: {note}"))
    if args.source == "ssh-config" and path not in loaded.settings.ssh.config_files:
        # The servers are imported by alias: only the ssh config fleettop reads resolves them.
        print(clean(f"note: {path} is not in ssh.config: its aliases resolve only once it is (or is included)"))
    for host in _selected(found, args.match):
        outcome, line = await _import_one(admin, host, args.tag or [], origin, dry_run=args.dry_run)
        counts[outcome] += 1
        print(clean(line))
    if (counts["added"] or counts["updated"]) and not args.dry_run:
        await tell_running_workers(loaded)
    summary = ", ".join(f"{count} {outcome}" for outcome, count in counts.items())
    print(f"{summary}{' (dry run: nothing changed)' if args.dry_run else ''}")
    return 0


def _source_path(args: argparse.Namespace, loaded: LoadedConfig) -> Path:
    if args.path:
        try:
            return expand_user(Path(args.path))
        except ValueError as exc:
            raise UsageError(f"{clean(args.path)}: {exc}") from None
    files = loaded.settings.ssh.config_files
    return files[0] if files else expand_user(DEFAULT_SSH_CONFIG)


def _selected(found: ImportResult, patterns: list[str] | None) -> list[ImportedHost]:
    return [host for host in found.hosts if not patterns or matches(host.name, patterns)]


async def _import_one(
    admin: ServerAdmin, host: ImportedHost, tags: list[str], origin: str, *, dry_run: bool
) -> tuple[str, str]:
    """What happened to one listed server, and the line that says so."""
    if host.problem:
        return "skipped", f"skipped {host.name} ({host.origin}): {host.problem}"
    current = await admin.repo.get_server(host.name)
    if current is not None and current.source == "config":
        return "skipped", f"skipped {host.name}: defined in {admin.config_path} (change it there)"
    fields: dict[str, Any] = fields_of(current) if current is not None else {"name": host.name}
    fields["host"] = host.host
    if host.port is not None:
        fields["port"] = host.port
    if host.username is not None:
        fields["username"] = host.username
    fields["tags"] = list(dict.fromkeys([*fields.get("tags", []), *host.tags, *tags]))  # the server's own kept
    try:
        cfg = validate_server(fields)
    except ConfigError as exc:
        return "skipped", f"skipped {host.name} ({host.origin}): {'; '.join(exc.problems)}"
    if current is None:
        if dry_run:
            return "added", f"would add {host.name}: {_where(cfg)}"
        server = await admin.add(cfg, origin=origin)
        return "added", f"added {server.name} ({describe(server)})"
    if cfg == ServerConfig.model_validate(fields_of(current)):
        return "unchanged", f"unchanged {host.name}"
    if dry_run:
        return "updated", f"would update {host.name}: {_where(cfg)}"
    server, detail = await admin.edit(current.name, cfg, origin=origin)
    return "updated", f"updated {server.name}: {detail}"


def _where(cfg: ServerConfig) -> str:
    user = f"{cfg.username}@" if cfg.username else ""
    tags = f", tags {','.join(cfg.tags)}" if cfg.tags else ""
    return f"{user}{cfg.host}:{cfg.port}{tags}"
