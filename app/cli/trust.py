"""`fleettop trust NAME` and `fleettop untrust NAME`: the host keys fleettop accepts."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from fleettop.cli.output import confirm
from fleettop.cli.repository import remote_server
from fleettop.config import LoadedConfig, Settings
from fleettop.errors import UsageError
from fleettop.probe import (
    Prober,
    describe_key,
    forget_known_host,
    host_pattern,
    host_port,
    other_keys_in,
    record_known_host,
)
from fleettop.text import clean

if TYPE_CHECKING:
    import asyncssh


async def cmd_trust(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    """Show the host key a server presents and, once confirmed, record it in data_dir/known_hosts."""
    settings = loaded.settings
    async with remote_server(loaded, args.name) as (repository, server):
        prober = Prober(settings, find_server=repository.get_server)
        try:
            fingerprint, key = await prober.host_key(server)
            state = await prober.trusted_state(server, key)
            host, port = await prober.address(server)  # an ssh config alias resolved: what known_hosts names
        finally:
            await prober.close()
        print(clean(f"{server.name} ({host_port(host, port)}) presents the host key {describe_key(key)}"))
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
        if not (args.replace or (args.yes and state == "unknown")) and not await confirm(question):
            print("Not trusted.", file=sys.stderr)
            return 1
        path = prober.own_known_hosts
        replaced = await asyncio.to_thread(record_known_host, path, host, port, key)
        await repository.audit(
            "trust", server.name, fingerprint + (f", {replaced} earlier key(s) removed" if replaced else "")
        )
        print(f"Trusted: recorded in {path}" + (f", in place of {replaced} earlier key(s)" if replaced else ""))
        await _warn_user_known_hosts(settings, host, port, key)
        return 0


async def cmd_untrust(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    """Take a server's keys out of data_dir/known_hosts: its next connection is refused until
    `fleettop trust` records a key again."""
    settings = loaded.settings
    async with remote_server(loaded, args.name) as (repository, server):
        prober = Prober(settings, find_server=repository.get_server)
        try:
            host, port = await prober.address(server)
        finally:
            await prober.close()
        path = prober.own_known_hosts
        removed = await asyncio.to_thread(forget_known_host, path, host, port)
        where = clean(host_pattern(host, port))  # the database's, validated by nobody
        if removed:
            await repository.audit("untrust", server.name, f"{removed} key(s) for {where} removed")
            print(f"Untrusted: {removed} key(s) for {where} removed from {path}")
        else:
            print(f"No key for {where} in {path}.")
        await _warn_user_known_hosts(settings, host, port, None)
        return 0


async def _warn_user_known_hosts(settings: Settings, host: str, port: int, key: asyncssh.SSHKey | None) -> None:
    """fleettop also trusts every key in ssh.known_hosts, which it never writes: say so when
    that file still holds another key for this host."""
    known_hosts = settings.ssh.known_hosts
    others = await asyncio.to_thread(other_keys_in, known_hosts, host, port, key)
    if others:
        where = clean(host_pattern(host, port))
        print(
            f"WARNING: {known_hosts} still trusts {others} other key(s) for {where}, and fleettop accepts them too "
            f"(fleettop never writes that file): remove them with ssh-keygen -R '{where}' -f {known_hosts}",
            file=sys.stderr,
        )
