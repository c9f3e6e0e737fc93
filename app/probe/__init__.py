"""Collection: run the probe on a server (over SSH, or locally) and turn its output into Metrics.

The only package that speaks SSH. `Prober` is what the queue's jobs, the CLI
and the service call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleettop.config import Settings, expand_user, from_groups
from fleettop.domain import Counters, Server
from fleettop.errors import FleettopError
from fleettop.jumps import parse_jump
from fleettop.probe.errors import CollectError, CollectErrorKind, host_port
from fleettop.probe.local import run_local
from fleettop.probe.parse import ParseError, ProbeResult, compute, parse
from fleettop.secrets import SecretBox, SecretMismatch

if TYPE_CHECKING:
    import asyncssh

    from fleettop.probe.ssh import (
        SSHPool,
        SSHTarget,
        describe_key,
        forget_known_host,
        host_pattern,
        other_keys_in,
        record_known_host,
    )

# fleettop.probe.ssh (and asyncssh, ~0.15 s to import) is loaded when a connection is first
# needed: a CLI command with a worker attached elsewhere never opens one.
_SSH_NAMES = {
    "describe_key",
    "forget_known_host",
    "host_pattern",
    "other_keys_in",
    "record_known_host",
    "SSHPool",
    "SSHTarget",
}
# An answer up to this size is parsed on the event loop (at most ~10 ms, however hostile);
# a bigger one, in a thread.
PARSE_INLINE_MAX = 64 * 1024


def __getattr__(name: str) -> Any:
    if name in _SSH_NAMES:
        from fleettop.probe import ssh

        return getattr(ssh, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CollectError",
    "CollectErrorKind",
    "ProbeResult",
    "Prober",
    "describe_key",
    "forget_known_host",
    "host_pattern",
    "host_port",
    "other_keys_in",
    "record_known_host",
]


FindServer = Callable[[str], Awaitable[Server | None]]


class Prober:
    def __init__(self, settings: Settings, secrets: SecretBox | None = None, find_server: FindServer | None = None):
        """`find_server`: a server by name (the store's), for a jump host named by a server's name."""
        self._settings = settings
        self._secrets = secrets or SecretBox(settings.data_dir)
        self._ssh_pool: SSHPool | None = None
        self._find_server = find_server
        self._names: dict[int, str] = {}  # server id -> the name its connection is kept under

    @property
    def _pool(self) -> SSHPool:
        if self._ssh_pool is None:
            from fleettop.probe.ssh import SSHPool

            self._ssh_pool = SSHPool(self._settings.ssh, self._settings.data_dir)
        return self._ssh_pool

    @property
    def own_known_hosts(self) -> Path:
        """fleettop's own known_hosts file (data_dir/known_hosts), where `fleettop trust` writes."""
        return self._pool.own_known_hosts

    async def collect(
        self, server: Server, previous: Counters | None, secret: bytes | None = None, *, keep: bool = True
    ) -> ProbeResult:
        """One collection. `previous`: the counters the last collection returned (None on first
        contact: the probe then samples twice). `secret`: the stored encrypted password or
        passphrase, sealed for this server (fleettop.secrets): one sealed for another is refused
        before connecting. The connection stays open for the next collection if the server is
        collected at least every ssh.keep_open_max_interval seconds, unless `keep=False` (a
        one-off test). Raises CollectError."""
        first_contact = previous is None
        if server.transport == "local":
            where = f"{server.name} (local)"
            text = await run_local(where, first_contact, self._settings.ssh.command_timeout)
        else:
            target = await self._target(server, secret)
            where = target.where
            keep = keep and server.interval <= self._settings.ssh.keep_open_max_interval
            if keep:
                self._names[server.id] = server.name
            text = await self._pool.probe(target, first_contact, keep=keep)
        collected_at = datetime.now(timezone.utc)
        try:
            if len(text) <= PARSE_INLINE_MAX:
                return compute(parse(text), previous, collected_at=collected_at)
            # ~170 ms per MiB of hostile mounts: in a thread, so other collections and the dashboard go on
            return await asyncio.to_thread(lambda: compute(parse(text), previous, collected_at=collected_at))
        except ParseError as exc:
            raise CollectError("unparsable", where, f"probe output unparsable: {exc}") from None

    async def host_key(self, server: Server) -> tuple[str, asyncssh.SSHKey]:
        """The fingerprint ("SHA256:...") and key the server presents now. Raises CollectError."""
        key = await self._pool.host_key(await self._target(server, None))
        return key.get_fingerprint(), key

    async def trusted_state(self, server: Server, key: asyncssh.SSHKey) -> str:
        """'trusted', 'changed' or 'unknown': what the known_hosts files say of this key."""
        return await self._pool.trusted_state(await self._target(server, None), key)

    async def address(self, server: Server) -> tuple[str, int]:
        """The host and port a server is reached at, its ssh config alias resolved: what
        known_hosts names it by. Raises CollectError."""
        route = await self._pool.route(await self._target(server, None))
        return route.address, route.port

    async def resolved(self, server: Server) -> dict[str, Any]:
        """What a server resolves to (address, port, alias, user, auth, jump hosts), for
        `fleettop servers test`. Raises CollectError."""
        target = await self._target(server, None)
        return (await self._pool.route(target)).summary(target)

    def connections(self) -> int:
        """SSH connections kept open now (those to jump hosts aside)."""
        return 0 if self._ssh_pool is None else self._ssh_pool.open_connections()

    def limit_connections(self, most: int) -> None:
        """Keep at most `most` connections open (what the open-file limit allows)."""
        self._pool.max_open = min(self._pool.max_open, most)

    def release(self, keep: Callable[[int], bool]) -> int:
        """Close the kept connections of the servers for which `keep(server_id)` is false (another
        worker collects them now, or they were disabled or removed), and of renamed ones;
        those in use stay. Returns how many were closed."""
        if self._ssh_pool is None:
            return 0
        names = {name for server_id, name in self._names.items() if not keep(server_id)}
        known = set(self._names.values())
        names |= {name for name in self._ssh_pool.open_names() if name not in known}
        self._names = {server_id: name for server_id, name in self._names.items() if name not in names}
        return self._ssh_pool.release(names)

    async def close(self) -> None:
        if self._ssh_pool is not None:
            await self._ssh_pool.close()

    async def _jump(self, server: Server) -> str | None:
        """The server's jump spec, else its group's; one naming another server (a bare word that
        is a server's name) becomes that server's user@host:port."""
        spec = server.jump or from_groups(self._settings.groups, server.tags, lambda group: group.jump)
        if spec is None or self._find_server is None:
            return spec
        hops = parse_jump(spec)  # validated when stored: well formed
        if len(hops) != 1 or not hops[0].bare or hops[0].host == server.name:
            return spec
        bastion = await self._find_server(hops[0].host)
        if bastion is None or bastion.transport != "ssh":
            return spec
        user = f"{bastion.username}@" if bastion.username else ""
        host = f"[{bastion.host}]" if ":" in bastion.host else bastion.host
        return f"{user}{host}:{bastion.port}"

    async def _target(self, server: Server, secret: bytes | None) -> SSHTarget:
        """What fleettop's settings say of the server (its own, else its tags' groups, else
        ssh.*); the ssh config fills in the rest when the pool connects."""
        from fleettop.probe.ssh import SSHTarget

        ssh = self._settings.ssh
        groups = self._settings.groups
        key_file = server.key_file or ssh.key_file
        target = SSHTarget(
            name=server.name,
            host=server.host,
            port=server.port,
            username=server.username or from_groups(groups, server.tags, lambda group: group.username),
            auth=server.auth,
            jump=await self._jump(server),
        )
        if key_file is not None:
            try:
                target = replace(target, key_file=expand_user(Path(key_file)))
            except ValueError as exc:  # "~nobody/key": a message, not a RuntimeError traceback
                raise CollectError("auth_failed", target.where, f"key file {key_file}: {exc}") from None
        if not secret:
            return target
        try:
            return replace(target, secret=self._secrets.open(secret, server.id, server))
        except SecretMismatch as exc:  # refused before connecting: nothing is sent
            raise CollectError(
                "auth_failed", target.where, f"{exc}: fleettop servers edit {server.name} --password"
            ) from None
        except FleettopError as exc:
            raise CollectError("auth_failed", target.where, str(exc)) from None
