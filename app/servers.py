"""Adding, editing and removing servers, each with its audit entry.

One implementation for both front ends: `fleettop servers` (which opens only the
database) and FleetService (the TUI's form), which then tells the workers itself.
Servers under `servers:` in the config file are changed in that file, not here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleettop import private
from fleettop.config import LoadedConfig, ServerConfig, Settings, expand_user
from fleettop.domain import Server, secret_binding_changes
from fleettop.errors import FleettopError, UnknownServer, UsageError
from fleettop.store.repo import KEEP, Repository

if TYPE_CHECKING:
    from fleettop.secrets import SecretBox

THRESHOLDS = ("cpu", "ram", "disk")
LOCALHOST = ServerConfig(name="localhost", host="localhost", transport="local")


class ServerAdmin:
    def __init__(self, repo: Repository, settings: Settings, secrets: SecretBox, config_path: Path):
        self.repo = repo
        self.settings = settings
        self.config_path = config_path
        self._secrets = secrets

    async def get(self, name: str) -> Server:
        server = await self.repo.get_server(name)
        if server is None:
            raise UnknownServer(name)
        return server

    async def check_new(self, name: str) -> None:
        existing = await self.repo.get_server(name)
        if existing is not None:
            where = f" (defined in {self.config_path})" if existing.source == "config" else ""
            raise UsageError(f"server {name!r} already exists{where}")

    def check_editable(self, server: Server) -> None:
        if server.source == "config":
            raise UsageError(
                f"server {server.name!r} is defined in {self.config_path}: change it there (only its password can be set here)"
            )

    async def check_removable(self, name: str) -> tuple[Server, int]:
        """The server and how many samples it has, if it may be removed here."""
        server = await self.get(name)
        if server.source == "config":
            raise UsageError(
                f"server {name!r} is defined in {self.config_path}: take it out of the file first "
                "(it is then kept as a database server, which can be removed)"
            )
        return server, await self.repo.count_samples(server.id)

    async def add(self, cfg: ServerConfig, secret: str | None = None, *, origin: str = "") -> Server:
        """A new database server; `secret` (a password or key passphrase) is stored encrypted.
        `origin`: where it came from, for the audit log ("imported from FILE")."""
        await self.check_new(cfg.name)
        check_key_file(cfg)
        seal = (lambda server_id: self._secrets.seal(secret, server_id, cfg)) if secret else None
        try:
            server = await self.repo.add_server(cfg, seal=seal)
        except FleettopError as exc:  # a race with another process adding the same name
            raise UsageError(str(exc)) from None
        await self.repo.audit(
            "server.add", server.name, f"{origin}: {describe(server)}" if origin else describe(server)
        )
        return server

    async def edit(
        self, name: str, cfg: ServerConfig | None, secret: str | None = None, *, origin: str = ""
    ) -> tuple[Server, str]:
        """Replace a server's settings (cfg=None: only its secret). secret=None keeps the
        stored one, unless the server now authenticates by agent (nothing to decrypt any more),
        or its host, port, user, transport or auth changed (a password goes only where it was
        entered for): then it is dropped. Returns the server and what changed, in words."""
        current = await self.get(name)
        if cfg is None:
            cfg = ServerConfig.model_validate(fields_of(current))
        else:
            self.check_editable(current)
            check_key_file(cfg)
        stored: bytes | None | object = KEEP
        if secret:
            stored = self._secrets.seal(secret, current.id, cfg)
        elif current.has_secret and (cfg.auth == "agent" or secret_binding_changes(current, cfg)):
            stored = None
        try:
            updated = await self.repo.update_server(name, cfg, secret=stored)
        except FleettopError as exc:
            raise UsageError(str(exc)) from None
        changes = differences(current, updated)
        if secret:
            changes.append("secret replaced")
        elif stored is None and cfg.auth == "agent":
            changes.append("secret removed")
        elif stored is None:
            changes.append(f"secret removed: set it again with fleettop servers edit {cfg.name} --password")
        detail = ", ".join(changes) or "no change"
        await self.repo.audit("server.edit", updated.name, f"{origin}: {detail}" if origin else detail)
        return updated, detail

    async def remove(self, server: Server, samples: int) -> None:
        """Delete a database server with its history: the server and its sample count as
        check_removable returned them (a command asks for confirmation in between)."""
        if not await self.repo.remove_server(server.name):
            raise UnknownServer(server.name)
        await self.repo.audit("server.remove", server.name, f"removed with {samples} samples")


async def add_first_run_localhost(repo: Repository, loaded: LoadedConfig) -> None:
    """On a first run (no config file, a database that never had a server) watch this machine.
    Every command that opens the database does it, so `servers list` shows what `collect --all`
    collects; once removed it stays removed (the audit log remembers there were servers)."""
    if loaded.exists or await repo.had_servers():
        return
    try:
        server = await repo.add_server(LOCALHOST)
    except FleettopError:  # another fleettop process, starting at the same moment, added it
        return
    await repo.audit("server.add", server.name, f"added on the first run ({describe(server)})")


def check_key_file(cfg: ServerConfig) -> None:
    """A UsageError for a key_file that is there but cannot be a key: a device, a FIFO, a link,
    a directory, over 64 KiB (a missing one may exist on the machines that collect)."""
    if cfg.key_file is None:
        return
    try:
        private.check_key_file(expand_user(cfg.key_file))
    except private.UnsafePath as exc:
        raise UsageError(f"server {cfg.name!r}: key_file {exc}") from None
    except OSError as exc:
        raise UsageError(f"server {cfg.name!r}: key_file {cfg.key_file}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"server {cfg.name!r}: key_file {cfg.key_file}: {exc}") from None


def fields_of(server: Server) -> dict[str, Any]:
    """A stored server's settings as ServerConfig fields: what it inherits left unset."""
    thresholds = {key: getattr(server.thresholds, key) for key in THRESHOLDS if key not in server.inherited}
    return {
        "name": server.name,
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "transport": server.transport,
        "auth": server.auth,
        "key_file": server.key_file,
        "interval": None if "interval" in server.inherited else server.interval,
        "enabled": True if "enabled" in server.inherited else server.enabled,  # off by a group only
        "thresholds": thresholds,
        "tags": list(server.tags),
        "jump": server.jump,
    }


INHERITED_MARK = "*"  # after a value the server takes from `groups:` or `defaults:`


def shown(server: Server, key: str) -> str:
    """One setting as a user writes it (`yes`, `60s`, `-` for none, not Python's reprs); a
    value taken from `defaults:` marked with INHERITED_MARK."""
    if key in THRESHOLDS:
        text = f"{getattr(server.thresholds, key):g}"
    elif key == "interval":
        text = f"{server.interval}s"
    elif key == "enabled":
        text = "yes" if server.enabled else "no"
    elif key == "tags":
        return ",".join(server.tags) or "-"
    else:
        value = getattr(server, key)
        return "-" if value is None else str(value)
    return text + INHERITED_MARK if key in server.inherited else text


def describe(server: Server) -> str:
    if server.transport == "local":
        where = f"local {server.host}"
    else:
        user = f"{server.username}@" if server.username else ""
        where = f"ssh {user}{server.host}:{server.port}, auth {server.auth}"
        if server.jump:
            where += f", jump {server.jump}"
    legend = f" ({INHERITED_MARK} from {'groups: or ' if server.tags else ''}defaults:)" if server.inherited else ""
    tags = f", tags {shown(server, 'tags')}" if server.tags else ""
    state = "enabled" if server.enabled else "disabled by its group" if "enabled" in server.inherited else "disabled"
    return (
        f"{where}, every {shown(server, 'interval')}, thresholds cpu {shown(server, 'cpu')} ram {shown(server, 'ram')} "
        f"disk {shown(server, 'disk')}{legend}{tags}, {state}"
    )


def differences(before: Server, after: Server) -> list[str]:
    watched = (
        "name",
        "host",
        "port",
        "username",
        "transport",
        "auth",
        "key_file",
        "interval",
        "enabled",
        *THRESHOLDS,
        "tags",
        "jump",
    )
    changes = []
    for key in watched:
        old, new = shown(before, key), shown(after, key)
        if old != new:
            label = f"{key} threshold" if key in THRESHOLDS else key
            changes.append(f"{label} {old} -> {new}")
    return changes
